"""Accuracy-vs-T figure overlaying several runs (paper Fig. 4: MTT flat, SDT peaked at its T)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def plot_accuracy_vs_t(runs: Mapping[str, Mapping[str, Any]], path: Path, title: str = "accuracy vs T") -> Path:
    """runs: label -> evaluation result ({"t": [...], "accuracy": [...]}); writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    try:
        for label, res in runs.items():
            ax.plot(res["t"], [100 * a for a in res["accuracy"]], marker="o", ms=3, label=label)
        ax.set_xlabel("time steps T (uniform configuration)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp)
        tmp.replace(path)
    finally:
        plt.close(fig)
    return path
