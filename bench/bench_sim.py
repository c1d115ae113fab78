"""Event-driven simulator speed: compiled kernels vs a per-event pure-Python simulator, same run.

- 3C1FC (random weights, laid out by speck_mtt.chip.layout) on the whole nmnist-sim test split
  (2,000 samples) with 2 workers: samples/s and input events/s; each run in a fresh process so
  its peak RSS is its own (printed for 200 and 2,000 samples: memory must stay flat).
- The pure-Python reference (eventsim.reference) on a few of the same samples: ratio per core.
- 4C2FC (random weights) on one gesture-sim test sample: compiled vs pure Python on its first
  events (the whole sample would take the pure-Python simulator minutes).
Targets (issue 5): 2,000 samples in < 15 s on 2 cores; >= 100x the pure-Python reference.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

N_REFERENCE = 3  # samples for the pure-Python 3C1FC run
GESTURE_PREFIX = 3000  # events of the gesture sample given to both simulators for the ratio


def _data_dir() -> Path:
    from speck_mtt.data import default_data_dir

    return default_data_dir()


def _artifact(arch: str) -> dict:
    import torch

    from speck_mtt.models import build_model
    from speck_mtt.chip.layout import layout_model

    torch.manual_seed(0)
    kwargs = {"bn": False} if arch == "gesture_4c2fc" else {}
    return layout_model(build_model(arch, **kwargs).eval(), "sim").artifact


def run_split(n: int, workers: int) -> dict:
    """Simulate the first n nmnist-sim test samples through 3C1FC (called in a fresh process)."""
    import resource

    from speck_mtt.data import event_dataset
    from speck_mtt.eventsim import compile_artifact, simulate, simulate_many

    net = compile_artifact(_artifact("nmnist_3c1fc"))
    data = event_dataset("nmnist-sim", "test", data_dir=_data_dir(), limit=n)
    simulate(net, data[0][0])  # load the cached compiled kernels before timing
    cpu = time.process_time()
    start = time.perf_counter()
    res = simulate_many(net, (data[i] for i in range(len(data))), workers=workers)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    return {"n": len(res), "seconds": seconds, "cpu_seconds": cpu, "sim_seconds": res.sim_seconds, "events": int(res.n_events.sum()),
            "synops": int(res.synops.sum()), "spikes": int(res.layer_spikes.sum()),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _in_fresh_process(n: int, workers: int) -> dict:
    code = f"import json; from bench.bench_sim import run_split; print(json.dumps(run_split({n}, {workers})))"
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _compare_reference(artifact: dict, samples: list) -> tuple[float, float, int]:
    """Seconds per sample of the compiled (one thread) and pure-Python simulators, and events."""
    import numpy as np

    from speck_mtt.eventsim import compile_artifact, simulate
    from speck_mtt.eventsim.reference import simulate_reference
    from speck_mtt.eventsim.simulator import set_workers

    set_workers(1)
    net = compile_artifact(artifact)
    simulate(net, samples[0])
    start = time.perf_counter()
    fast = [simulate(net, ev) for ev in samples]
    compiled = (time.perf_counter() - start) / len(samples)
    start = time.perf_counter()
    slow = [simulate_reference(artifact, ev) for ev in samples]
    python = (time.perf_counter() - start) / len(samples)
    for a, b in zip(fast, slow):  # the yardstick must agree, or the ratio means nothing
        assert np.array_equal(a.counts, b["counts"]) and a.synops.sum() == b["synops"]
    return compiled, python, sum(len(ev) for ev in samples)


def main() -> None:
    from speck_mtt.data import event_dataset

    workers = 2
    event_dataset("nmnist-sim", "test", data_dir=_data_dir())  # generate the split once, untimed
    print(f"3C1FC (random weights) on nmnist-sim test, {workers} workers, each run in a fresh process:")
    runs = [_in_fresh_process(n, workers) for n in (200, 2000)]
    for r in runs:
        print(f"  {r['n']:5d} samples: {r['seconds']:.2f} s wall ({r['sim_seconds']:.2f} s in kernels, "
              f"{r['cpu_seconds']:.2f} s CPU over all threads), "
              f"{r['n'] / r['seconds']:.0f} samples/s, {r['events'] / r['seconds'] / 1e6:.2f} M input events/s, "
              f"{r['synops'] / r['n'] / 1e6:.2f} M SynOps and {r['spikes'] / r['n']:.0f} spikes per sample, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB")
    full = runs[-1]
    print(f"  whole split: {full['seconds']:.2f} s (target < 15 s): {'PASS' if full['seconds'] < 15 else 'FAIL'}; "
          f"peak RSS 2000 vs 200 samples: {full['peak_rss_mb'] / runs[0]['peak_rss_mb']:.2f}x; "
          f"machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    data = event_dataset("nmnist-sim", "test", data_dir=_data_dir(), limit=N_REFERENCE)
    compiled, python, events = _compare_reference(_artifact("nmnist_3c1fc"), [data[i][0] for i in range(len(data))])
    per_core = python / compiled
    throughput = python * full["n"] / full["seconds"]
    print(f"  pure Python on {N_REFERENCE} samples ({events} events): {python:.2f} s/sample; compiled, one thread: "
          f"{compiled * 1e3:.1f} ms/sample -> {per_core:.0f}x per core, {throughput:.0f}x with {workers} workers "
          f"(target >= 100x): {'PASS' if per_core >= 100 else 'FAIL'}")

    gesture = event_dataset("gesture-sim", "test", data_dir=_data_dir(), limit=1)
    events, _ = gesture[0]
    art = _artifact("gesture_4c2fc")
    from speck_mtt.eventsim import compile_artifact, simulate

    net = compile_artifact(art)
    simulate(net, events)
    start = time.perf_counter()
    res = simulate(net, events)
    whole = time.perf_counter() - start
    print(f"4C2FC (random weights) on one gesture-sim sample: {len(events)} events, "
          f"{res.synops.sum() / 1e6:.2f} M SynOps, {whole * 1e3:.1f} ms one thread "
          f"({len(events) / whole / 1e6:.2f} M input events/s)")
    compiled, python, n = _compare_reference(art, [events[:GESTURE_PREFIX]])
    print(f"  first {n} events: pure Python {python:.2f} s, compiled {compiled * 1e3:.2f} ms -> {python / compiled:.0f}x")


if __name__ == "__main__":
    main()
