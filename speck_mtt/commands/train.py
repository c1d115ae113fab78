"""`speck-mtt train`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..api import train
from ..choices import Dataset, Loss, Method, Phase
from .options import DataDir, Json, value


def train_cmd(
    recipe: Annotated[str, typer.Argument(help="Recipe name (nmnist, gesture, cifar10dvs) or path of a .toml.")],
    method: Annotated[Optional[Method], typer.Option(help="Training method of the phase being run.")] = None,
    loss: Annotated[Optional[Loss], typer.Option(help="ce (time-mean output) or tet (a loss per step).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs of the phase being run.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Run folder (default runs/RECIPE-METHOD[-quick]).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue OUT/last.pt exactly.")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="CI-sized run: the recipe's quick section.")] = False,
    data_dir: DataDir = None,
    dataset: Annotated[Optional[Dataset], typer.Option(help="Override the recipe's dataset.")] = None,
    phase: Annotated[Phase, typer.Option(help="base, or bias-removal (absorb BN, drop bias, fine-tune).")] = Phase.base,
    from_: Annotated[Optional[Path], typer.Option("--from", help="Base checkpoint for --phase bias-removal.")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu | cuda (default: cuda when present).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Recipe override section.key=value (repeatable).")] = None,
    threads: Annotated[Optional[int], typer.Option(help="torch CPU threads (default: torch's choice; "
                                                   "1 is often faster on a busy or small machine).")] = None,
    json_out: Json = False,
) -> None:
    """Train a spiking network with MTT (or a baseline) and report its accuracy at every T."""
    from ..files import dumps_json

    result = train(recipe, out=out, method=value(method), loss=value(loss), epochs=epochs, phase=phase.value,
                   from_checkpoint=from_, resume=resume, quick=quick, dataset=value(dataset), data_dir=data_dir,
                   device=device, overrides=set_, threads=threads,
                   progress=(lambda line: typer.echo(line, err=True)) if json_out else True)
    if json_out and result.rank == 0:
        typer.echo(dumps_json(result.data, indent=None))
