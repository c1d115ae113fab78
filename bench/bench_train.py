"""Training cost: MTT vs SDT per epoch (vs the theory M*E[T]/T_max, docs/design.md#ttm-grouping), their peak memory,
and speck-mtt's SDT throughput vs a plain sinabs SDT loop written the simplest way.

Same in-memory N-MNIST-shaped event frames (B, T_max=10, 2, 34, 34) and the same 3C1FC(W16)
network for every case. MTT draws every stage (input_stage="draw") so that the paper's cost
formula applies. Each case runs in fresh spawned children (a forked child deadlocks when the
parent's OpenMP pool is already running, e.g. after bench_loader): one times it, one
resets its peak-RSS counter (/proc/self/clear_refs) and records the peak, so the peak memory of
one case never hides another's;
time is the mean of TIMED_EPOCHS epochs after a warm-up epoch (fewer epochs left the reading to
noise: two gave speck-mtt SDT 0.7-0.8x the plain loop, which in-process alternation does not show).

BENCH_DEVICE=cuda runs every case on the GPU instead (peak memory: torch.cuda.max_memory_allocated).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import sinabs.layers as sl
import torch
import torch.nn.functional as F
from sinabs.activation import MembraneSubtract, MultiSpike, SingleExponential
from torch import nn

from speck_mtt.models import build_model
from speck_mtt.mtt.config import ConfigSampler
from speck_mtt.mtt.losses import mean_output_ce
from speck_mtt.training.loop import train_epoch

N, BATCH, T_MAX, T_MIN, DRAWS = 256, 64, 10, 1, 3
LONG_T = 30  # SDT at a longer T, speck-mtt vs plain sinabs: sinabs' own time loop costs O(T^2) in backward
TIMED_EPOCHS = 6
ROUNDS = 2  # cases run in turn ROUNDS times; each keeps its fastest round (the first process started is often slower)
DEVICE = torch.device(os.environ.get("BENCH_DEVICE", "cpu"))


def _data(t: int = T_MAX) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.poisson(torch.full((N, t, 2, 34, 34), 0.3 * T_MAX / t), generator=g)
    y = torch.randint(0, 10, (N,), generator=g)
    return [(x[i:i + BATCH].to(DEVICE), y[i:i + BATCH].to(DEVICE)) for i in range(0, N, BATCH)]


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def _status_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _speck_mtt_epoch(method: str, t_max: int = T_MAX):
    torch.manual_seed(0)
    model = build_model("nmnist_3c1fc", bn=False).to(DEVICE)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sampler = ConfigSampler(method, model.n_stages(), T_MIN, t_max, t_max, draws=DRAWS, input_stage="draw", seed=0)
    drawn: list[list[int]] = []
    iteration = sampler.iteration
    sampler.iteration = lambda: drawn.extend(c := iteration()) or c  # record the realized draws

    def epoch(data):
        drawn.clear()
        train_epoch(model, data, sampler, mean_output_ce, opt, DEVICE)
        return list(drawn)
    return epoch


def _plain_sinabs_epoch():
    """The simplest sinabs SDT loop: one nn.Sequential of IAFSqueeze layers, time folded into the batch."""
    torch.manual_seed(0)

    def neuron():
        return sl.IAFSqueeze(batch_size=BATCH, spike_threshold=1.0, min_v_mem=-1.0, spike_fn=MultiSpike,
                             reset_fn=MembraneSubtract(), surrogate_grad_fn=SingleExponential())

    model = nn.Sequential(
        nn.Conv2d(2, 8, 3, padding=1, bias=False), neuron(), nn.AvgPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1, bias=False), neuron(), nn.AvgPool2d(2),
        nn.Conv2d(16, 16, 3, stride=2, padding=1, bias=False), neuron(),
        nn.Flatten(), nn.Linear(256, 10, bias=False), neuron()).to(DEVICE)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def epoch(data):
        for x, y in data:
            for layer in model:
                if isinstance(layer, sl.IAFSqueeze):
                    layer.reset_states()
            out = model(x.flatten(0, 1)).unflatten(0, (x.shape[0], x.shape[1]))
            loss = F.cross_entropy(out.mean(1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return epoch


def _return_freed_memory() -> None:
    """glibc: serve every block >= 64 KiB by mmap so a freed tensor leaves RSS at once; otherwise
    the dynamic mmap threshold keeps freed heap pages and RSS shows fragmentation, not tensors."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _case(name: str, measure: str, queue, t: int = T_MAX) -> None:
    """measure "time": TIMED_EPOCHS timed epochs after a warm-up epoch, default malloc; "memory": peak RSS
    of one epoch with freed blocks returned at once (mmap for every block, too slow to time)."""
    if measure == "memory":
        _return_freed_memory()
    data = _data(t)
    epoch = _plain_sinabs_epoch() if name == "plain" else _speck_mtt_epoch(name, t)
    epoch(data if measure == "time" else data[:1])  # warm-up
    if measure == "memory" and DEVICE.type == "cuda":
        _sync()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        epoch(data)
        _sync()
        queue.put({"peak_mb": (torch.cuda.max_memory_allocated() - base) / 2**20})
        return
    if measure == "memory":
        ok = _reset_peak()
        rss0 = _status_kb("VmRSS")
        epoch(data)
        peak = _status_kb("VmHWM")
        queue.put({"peak_mb": (peak - rss0) / 1024 if ok and peak and rss0 else None})
        return
    _sync()
    start, drawn = time.perf_counter(), []
    for _ in range(TIMED_EPOCHS):
        drawn += epoch(data) or []
    _sync()
    wall = (time.perf_counter() - start) / TIMED_EPOCHS
    # cost of the configurations actually drawn, relative to SDT at T_max: sum of stage T / (S*T_max)
    realized = sum(sum(c) for c in drawn) / (len(drawn[0]) * T_MAX) / (TIMED_EPOCHS * len(data)) if drawn else None
    queue.put({"wall": wall, "realized": realized})


def run_case(name: str, measure: str, t: int = T_MAX) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_case, args=(name, measure, queue, t))
    proc.start()
    while True:
        try:
            result = queue.get(timeout=1)
            break
        except Exception:  # queue.Empty: keep waiting while the child lives
            if not proc.is_alive():
                raise RuntimeError(f"benchmark case {name} died (exit code {proc.exitcode})") from None
    proc.join()
    return result


def main() -> None:
    theory = ConfigSampler("mtt", 4, T_MIN, T_MAX, T_MAX, draws=DRAWS, input_stage="draw").expected_cost_ratio()
    print(f"{N} samples, batch {BATCH}, T_max {T_MAX}, MTT T in [{T_MIN},{T_MAX}] per stage, M = {DRAWS}, "
          f"{torch.get_num_threads()} torch threads, device {DEVICE}")
    names = ("sdt", "mtt", "plain")
    rounds = [{name: run_case(name, "time") for name in names} for _ in range(ROUNDS)]
    res = {name: min((r[name] for r in rounds), key=lambda r: r["wall"]) | run_case(name, "memory") for name in names}
    for name, label in (("sdt", "speck-mtt SDT (T=10)"), ("mtt", "speck-mtt MTT"), ("plain", "plain sinabs SDT")):
        r = res[name]
        mem = f"{r['peak_mb']:.1f} MiB" if r["peak_mb"] is not None else "n/a (no /proc/self/clear_refs)"
        print(f"  {label:22s} epoch {r['wall']:6.2f} s  {N / r['wall']:7.1f} samples/s  peak extra memory {mem}")
    ratio = res["mtt"]["wall"] / res["sdt"]["wall"]
    dev = ratio / theory - 1
    print(f"MTT/SDT epoch time: {ratio:.2f}x  theory M*E[T]/T_max = {theory:.2f}x  ({100 * dev:+.1f}%; "
          f"target within 10%: {'yes' if abs(dev) <= 0.10 else 'no'}); the draws of this epoch "
          f"give {res['mtt']['realized']:.2f}x")
    if res["mtt"]["peak_mb"] is not None and res["sdt"]["peak_mb"] is not None:
        print(f"peak memory MTT/SDT: {res['mtt']['peak_mb'] / res['sdt']['peak_mb']:.2f}x "
              f"(target <= 1: {'yes' if res['mtt']['peak_mb'] <= res['sdt']['peak_mb'] else 'no'})")
    print(f"throughput speck-mtt SDT / plain sinabs SDT: {res['plain']['wall'] / res['sdt']['wall']:.2f}x")
    long = {name: run_case(name, "time", LONG_T)["wall"] for name in ("sdt", "plain")}
    print(f"at T={LONG_T}: speck-mtt SDT epoch {long['sdt']:.2f} s, plain sinabs SDT {long['plain']:.2f} s: "
          f"speck-mtt {long['plain'] / long['sdt']:.2f}x the throughput")


if __name__ == "__main__":
    main()
