"""`speck-mtt train`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..choices import Dataset, Loss, Method, Phase
from ..errors import SpeckMttError
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
    import torch

    from ..files import dumps_json, output_lock
    from ..training.loop import default_out, phase_settings, run
    from ..training.recipe import load_recipe, parse_set

    if threads is not None:
        if threads < 1:
            raise SpeckMttError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    overrides = parse_set(set_ or [])
    section = "train" if phase == Phase.base else "bias_removal"
    for key, setting in (("method", value(method)), ("epochs", epochs)):
        if setting is not None:
            overrides.setdefault(section, {})[key] = setting
    if loss is not None:
        overrides.setdefault("train", {})["loss"] = loss.value
    if dataset is not None:
        overrides.setdefault("data", {})["dataset"] = dataset.value
    rec = load_recipe(recipe, quick=quick, overrides=overrides)
    phase_settings(rec, phase.value)
    out = out or default_out(rec, phase.value)
    with output_lock(out):
        summary = run(rec, out, phase=phase.value, from_ckpt=from_, resume=resume, device=device, data_dir=data_dir,
                      progress=not json_out)
    if json_out:
        typer.echo(dumps_json(summary, indent=None))
