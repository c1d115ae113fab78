"""`speck-mtt report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..api import write_report
from .options import Json


def report_cmd(
    results_dir: Annotated[Path, typer.Argument(help="Results folder: one sub-folder per method holding "
                                                     "eval.json, measure_sim.json, measure_speck2e*.json.")],
    t: Annotated[Optional[int], typer.Option("--t", min=1, help="T of the torch accuracy column (default: the T "
                                                                "the simulator was compared with, else T_max).")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset name for the paper reference "
                                                                     "(default: from the result files).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Where report.md/json and the PNG go "
                                                              "(default: RESULTS_DIR).")] = None,
    plot: Annotated[bool, typer.Option("--plot/--no-plot", help="Write accuracy_vs_t.png.")] = True,
    json_out: Json = False,
) -> None:
    """Table 5 of the paper for a results folder: torch, simulator and Speck accuracy, parameters and
    spike differences per method, next to the paper's numbers."""
    from ..files import dumps_json

    report = write_report(results_dir, out=out, t=t, dataset=dataset, plot=plot)
    typer.echo(dumps_json(report.data) if json_out else report.text)
