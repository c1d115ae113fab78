"""`speck-mtt deploy`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..api import deploy
from ..choices import Dataset, Target
from .options import DataDir, Json, value


def deploy_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Bias-free checkpoint written by `speck-mtt train` "
                                                    "(run the bias-removal phase first), or a NIR graph "
                                                    "(FILE.nir, from `speck-mtt export` or another tool).")],
    out: Annotated[Path, typer.Option("--out", help="Directory for artifact.pt, layout.json, report.md, model.pt.")],
    target: Annotated[Target, typer.Option("--target", help="speck2e: must fit the chip (cores assigned); "
                                                            "sim: any size, for the event-driven simulator.")]
    = Target.speck2e,
    device: Annotated[Optional[str], typer.Option("--device", help="Also upload to this Speck2e devkit "
                                                                   "(e.g. speck2edevkit:0); needs the real samna.")] = None,
    dataset: Annotated[Optional[Dataset], typer.Option("--dataset", help="Dataset for the SynOps estimate (default: "
                                                                     "the checkpoint's).")] = None,
    data_dir: DataDir = None,
    samples: Annotated[int, typer.Option("--samples", min=0, help="Test samples for the SynOps estimate "
                                                                  "(0: skip).")] = 8,
    frames: Annotated[Optional[int], typer.Option("--frames", min=1, help="Time steps per sample for the "
                                                                          "SynOps forward (default: the "
                                                                          "checkpoint's T, else the dataset's "
                                                                          "recipe T).")] = None,
    floor: Annotated[Optional[float], typer.Option("--floor", help="Lower threshold of every spiking layer in "
                                                   "thresholds, e.g. -8 (default: the floor the checkpoint was "
                                                   "trained with).")] = None,
    json_out: Json = False,
) -> None:
    """Lay a checkpoint or NIR graph out for Speck2e (or the simulator); report cores, memory and SynOps."""
    from ..chip.deploy import format_number
    from ..files import dumps_json

    summary = deploy(checkpoint, out, target=target.value, device=device, dataset=value(dataset), data_dir=data_dir,
                     samples=samples, frames=frames, floor=floor).data
    if json_out:
        typer.echo(dumps_json(summary))
        return
    verdict = "fits" if summary["fits_chip"] else "does NOT fit"
    typer.echo(f"{summary['arch']} -> {summary['target']}: {verdict} {summary['chip']}; wrote {out}/"
               "{artifact.pt,layout.json,report.md,model.pt}")
    for layer in summary["layers"]:
        mem = layer["memory"]
        typer.echo(f"  layer {layer['index']} {layer['name']}: core {layer['core']}, kernel mem {mem['kernel']:,}, "
                   f"neuron mem {mem['neuron']:,}, SynOps/sample {format_number(layer['synops_per_sample'])}")
    for problem in summary["fit_problems"]:
        typer.echo(f"  not on {summary['chip']}: {problem}")
    for note in summary.get("import_notes", []):
        typer.echo(f"  NIR default: {note}")
    if summary["synops"]["note"]:
        typer.echo(f"  {summary['synops']['note']}")
