"""`speck-mtt early-exit`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import SpeckMttError
from .options import DatasetOfCheckpoint, DataDir, Json, Samples, value


def parse_thresholds(text: str | None) -> list[float]:
    """--thresholds as numbers in (0, 1]; None: the library's default sweep."""
    if text is None:
        from ..analysis.early_exit import DEFAULT_THRESHOLDS

        return list(DEFAULT_THRESHOLDS)
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise SpeckMttError(f"--thresholds {text!r}: give comma-separated numbers, e.g. 0.8,0.9,0.99") from exc
    if not vals or any(not (0 < v <= 1) or math.isnan(v) for v in vals):
        raise SpeckMttError(f"--thresholds {text!r}: each threshold must be in (0, 1]")
    return vals


def early_exit_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint written by `speck-mtt train`.")],
    dataset: DatasetOfCheckpoint = None,
    data_dir: DataDir = None,
    t_max: Annotated[Optional[int], typer.Option("--t-max", min=1, help="Frames of the one run read step by step "
                                                                        "(default: the checkpoint's T_max).")] = None,
    thresholds: Annotated[Optional[str], typer.Option("--thresholds", help="Comma-separated confidence thresholds "
                                                      "(default: a sweep from 0.2 to 0.99).")] = None,
    temperature: Annotated[float, typer.Option("--temperature", min=1e-6, help="Softmax temperature of the "
                                                                               "confidence.")] = 1.0,
    samples: Samples = None,
    fixed_t: Annotated[bool, typer.Option("--fixed-t/--no-fixed-t", help="Also run at every fixed T "
                                                                         "(energy proxy per T).")] = True,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write dynamic.json and dynamic.md here.")] = None,
    json_out: Json = False,
) -> None:
    """Early exit over time steps: accuracy vs mean T for a sweep of confidence thresholds, and
    spikes/SynOps per sample for each T."""
    from ..analysis.early_exit import dynamic_report, energy_at_t, render_dynamic, run_stepwise
    from ..analysis.probe import checkpoint_and_test_frames
    from ..files import dumps_json, remove_stale_temps, save_json, save_text

    ths = parse_thresholds(thresholds)
    model, data, t, name = checkpoint_and_test_frames(checkpoint, value(dataset), data_dir, t_max, samples)
    report = dynamic_report(run_stepwise(model, data, t), ths, temperature)
    report.update(checkpoint=str(checkpoint), dataset=name)
    if fixed_t:
        report["fixed_t"] = energy_at_t(model, data, range(1, t + 1))
    if out is not None:
        remove_stale_temps(Path(out))  # an unlocked folder: what killed writers left, nobody else removes
        save_json(report, Path(out) / "dynamic.json")
        save_text(render_dynamic(report), Path(out) / "dynamic.md")
    typer.echo(dumps_json(report) if json_out else render_dynamic(report))
