"""VGGSNN training cost: MTT vs SDT per step on CIFAR10-DVS-shaped frames, against the theory
M*E[T]/T_max (docs/design.md#ttm-grouping), and SDT's cost per sample and time step.

The cifar10dvs recipe as `make cifar10dvs-sim` trains it (VGGSNN with BN, membrane voting, 4
stages, MTT drawing every stage, AdamW, bias decay): the model, sampler, optimizer and loss come
from speck_mtt.training.loop, the steps from its train_epoch. Frames are random in memory
(BATCH, T_max, 2, 128, 128), so only compute is timed. SDT and MTT run in turn ROUNDS times and
each keeps its fastest round (other jobs on the machine slow a round, never speed one up); MTT's
few steps draw few configurations, so the ratio is also given against the cost of the draws
actually made. About a minute on 2 quiet cores (T_max 10, batch 8, 3 steps).

Environment: BENCH_VGG_STEPS, BENCH_VGG_BATCH, BENCH_VGG_T (default: the recipe's T_max, as
`make cifar10dvs-sim` sets it), BENCH_DEVICE=cuda.
"""

from __future__ import annotations

import os
import time

import torch

from speck_mtt.mtt.losses import make_loss
from speck_mtt.training.loop import base_setup, make_optimizer, make_sampler, phase_settings, train_epoch
from speck_mtt.training.recipe import load_recipe

STEPS = int(os.environ.get("BENCH_VGG_STEPS", "3"))
BATCH = int(os.environ.get("BENCH_VGG_BATCH", "8"))
ROUNDS = 2
TOLERANCE = 0.15  # issue 25: MTT/SDT within 15 % of the theory
DEVICE = torch.device(os.environ.get("BENCH_DEVICE", "cpu"))


def recipe(method: str, t_max: int | None = None):
    """The cifar10dvs recipe as the stand-in's run uses it (`make cifar10dvs-sim` sets no T_max)."""
    return load_recipe("cifar10dvs", overrides={"train": {"method": method, **({"t_max": t_max} if t_max else {})}})


def _batches(t_max: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.poisson(torch.full((STEPS, BATCH, t_max, 2, 128, 128), 0.05), generator=g)
    y = torch.randint(0, 10, (STEPS, BATCH), generator=g)
    return [(x[i].to(DEVICE), y[i].to(DEVICE)) for i in range(STEPS)]


def stepper(rec):
    """A function running the training steps of rec's method (returns the configurations drawn), and its sampler."""
    ph = phase_settings(rec, "base")
    torch.manual_seed(0)
    model = base_setup(rec).model
    model.granularity = rec.model.granularity
    model.to(DEVICE)
    optimizer, _ = make_optimizer(rec, ph, model)
    sampler = make_sampler(rec, ph, model)
    loss_fn = make_loss(rec.train.loss, rec.train.tet_lambda)
    drawn: list[list[int]] = []
    iteration = sampler.iteration
    sampler.iteration = lambda: drawn.extend(c := iteration()) or c  # record the realized draws

    def run(batches) -> list[list[int]]:
        drawn.clear()
        train_epoch(model, batches, sampler, loss_fn, optimizer, DEVICE, bias_decay=ph.bias_decay)
        return list(drawn)
    return run, sampler


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    t_env = int(os.environ["BENCH_VGG_T"]) if os.environ.get("BENCH_VGG_T") else None
    recipes = {m: recipe(m, t_env) for m in ("sdt", "mtt")}
    rec = recipes["mtt"]
    t_max = rec.train.t_max
    batches = _batches(t_max)
    runs = {m: stepper(r) for m, r in recipes.items()}
    theory = runs["mtt"][1].expected_cost_ratio()
    load = os.getloadavg()[0]
    print(f"VGGSNN (cifar10dvs recipe: BN, granularity {rec.model.granularity}, M = {rec.train.draws}), "
          f"{STEPS} steps of batch {BATCH}, T_max {t_max}, {torch.get_num_threads()} torch threads, "
          f"device {DEVICE}, load average {load:.1f} on {os.cpu_count()} cores")
    for run, _ in runs.values():  # warm-up: allocations, first-call overheads
        run(batches[:1])
    best: dict[str, tuple[float, list[list[int]]]] = {}
    for _ in range(ROUNDS):
        for method, (run, _) in runs.items():
            _sync()
            start = time.perf_counter()
            drawn = run(batches)
            _sync()
            wall = time.perf_counter() - start
            if method not in best or wall < best[method][0]:
                best[method] = (wall, drawn)
    sdt, mtt = best["sdt"][0], best["mtt"][0]
    drawn = best["mtt"][1]
    realized = sum(sum(c) for c in drawn) / (len(drawn[0]) * t_max) / STEPS
    per = 1000 * sdt / (STEPS * BATCH * t_max)
    print(f"  SDT: {sdt / STEPS:.2f} s per step, {per:.1f} ms per sample and time step (forward + backward + AdamW)")
    print(f"  MTT: {mtt / STEPS:.2f} s per step")
    ratio = mtt / sdt
    dev = ratio / theory - 1
    print(f"MTT/SDT step time: {ratio:.2f}x  theory M*E[T]/T_max = {theory:.2f}x ({100 * dev:+.1f}%; within "
          f"{100 * TOLERANCE:.0f}%: {'yes' if abs(dev) <= TOLERANCE else 'no'}); the draws of these "
          f"{STEPS} steps give {realized:.2f}x ({100 * (ratio / realized - 1):+.1f}%)")
    if load > (os.cpu_count() or 1) / 2:
        print("  note: the machine was busy while this ran; the timings are not a quiet machine's")


if __name__ == "__main__":
    main()
