"""`python -m bench [NAME ...]`: run the benchmarks (loader, train, sim by default) and print ratios."""

from __future__ import annotations

import importlib
import sys
import time

BENCHES = ("bench_loader", "bench_train", "bench_sim", "bench_vggsnn", "bench_vggsnn_train")


def main(argv: list[str]) -> None:
    names = argv or list(BENCHES)
    for name in names:
        module = importlib.import_module(f"bench.{name if name.startswith('bench_') else 'bench_' + name}")
        print(f"\n=== {module.__name__} ===", flush=True)
        start = time.perf_counter()
        module.main()
        print(f"--- {module.__name__} took {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
