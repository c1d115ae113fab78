"""Accuracy at every uniform T (the paper's temporal-flexibility view, Fig. 4).

One pass over test frames cached at T_max: each batch is resampled to every T with the TTM
grouping (resample_time, the same grouping the data cache uses) and classified with the
uniform configuration [T] * S by the time-mean output.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from .files import save_json, save_text
from .models import SpikingNet
from .timegroups import resample_time


@torch.no_grad()
def evaluate(model: SpikingNet, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], ts: Sequence[int],
             device: torch.device | str = "cpu", reduce=None) -> dict[str, Any]:
    """Accuracy at each T in ts. batches yield (frames (B, T_max, C, H, W), labels).

    reduce, when given, sums a tensor across processes (distributed evaluation).
    """
    was_training = model.training
    model.eval()
    n_stages = model.n_stages()
    correct = torch.zeros(len(ts), dtype=torch.float64)
    total = torch.zeros((), dtype=torch.float64)
    try:
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            for i, t in enumerate(ts):
                out = model(resample_time(x, int(t), dim=1), [int(t)] * n_stages)
                correct[i] += (out.mean(1).argmax(1) == y).sum().item()
            total += len(y)
    finally:
        model.train(was_training)
    if reduce is not None:
        correct, total = reduce(correct), reduce(total)
    n = int(total.item())
    acc = [float(c / n) if n else float("nan") for c in correct.tolist()]
    return {"t": [int(t) for t in ts], "accuracy": acc, "n_samples": n}


def eval_csv(result: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["t", "accuracy"])
    for t, a in zip(result["t"], result["accuracy"]):
        writer.writerow([t, f"{a:.6f}"])
    return buf.getvalue()


def save_eval(result: dict[str, Any], stem: Path) -> None:
    """stem.json and stem.csv, written atomically."""
    stem = Path(stem)
    save_json(result, stem.with_suffix(".json"))
    save_text(eval_csv(result), stem.with_suffix(".csv"))


def eval_table(result: dict[str, Any], title: str = "accuracy per T"):
    """A rich Table of accuracy per T (printed by the caller on stderr or stdout)."""
    from rich.table import Table

    table = Table(title=f"{title} ({result['n_samples']} samples)")
    table.add_column("T", justify="right")
    table.add_column("accuracy %", justify="right")
    for t, a in zip(result["t"], result["accuracy"]):
        table.add_row(str(t), f"{100 * a:.2f}")
    return table
