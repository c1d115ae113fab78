"""Figures through matplotlib's object API (Figure + the Agg canvas): no pyplot global state and no
matplotlib.use, so a notebook's backend stays as it was; written atomically like every output."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .files import atomic_write


def new_figure(figsize: tuple[float, float], dpi: int = 120) -> Figure:
    """A Figure with its own Agg canvas (pyplot never sees it, so nothing needs closing)."""
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: Path) -> Path:
    """fig as a PNG at path, through a per-process temporary file and os.replace."""
    path = Path(path)
    atomic_write(path, lambda fh: fig.savefig(fh, format="png"), fsync=False)
    return path


def plot_accuracy_vs_t(runs: Mapping[str, Mapping[str, Any]], path: Path, title: str = "accuracy vs T") -> Path:
    """runs: label -> evaluation result ({"t": [...], "accuracy": [...]}); writes a PNG."""
    fig = new_figure((5.5, 3.8))
    ax = fig.subplots()
    for label, res in runs.items():
        ax.plot(res["t"], [100 * a for a in res["accuracy"]], marker="o", ms=3, label=label)
    ax.set_xlabel("time steps T (uniform configuration)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_png(fig, path)
