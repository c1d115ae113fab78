"""The Python API: what the `speck-mtt` commands do, as functions for notebooks and scripts
(docs/python.md). The commands call these functions and print their results.

Every function takes the output folder's lock as its command does (files.output_lock), prints
nothing unless asked (progress=), and returns a frozen dataclass: a few headline fields and
`data`, exactly what the command's --json prints. This module imports its libraries inside the
functions, so `import speck_mtt` and `speck-mtt --help` stay cheap.

Under torchrun (WORLD_SIZE > 1) train and measure_deployed are distributed and return the same
result on every rank (train's metrics are all-reduced; measurement is gathered on rank 0 and
broadcast); `rank` says which process holds it, and only rank 0 writes. deploy, export_nir and
write_report are single-process work: under torchrun each rank would do all of it, so call them
on rank 0 only.

The measurement and the report are `measure_deployed` and `write_report`, not `measure` and
`report`: those name submodules of the package, which would replace the functions on it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SpeckMttError

if TYPE_CHECKING:
    from .training.recipe import Recipe

Overrides = dict[str, dict[str, Any]] | Sequence[str] | None


def _rank() -> int:
    """This process's rank under torchrun, 0 alone."""
    return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0


@dataclass(frozen=True, kw_only=True)
class Result:
    """What a call returned: `data` is what the command's --json prints."""

    data: dict[str, Any] = field(repr=False)

    def to_json(self) -> str:
        from .files import dumps_json

        return dumps_json(self.data)


@dataclass(frozen=True, kw_only=True)
class Trained(Result):
    out: Path
    model: Path  # OUT/model.pt: what deploy, export_nir and the bias-removal phase take
    phase: str
    method: str
    accuracy: dict[int, float]  # test accuracy at every evaluated T
    rank: int = 0


@dataclass(frozen=True, kw_only=True)
class Deployed(Result):
    out: Path  # artifact.pt, layout.json, report.md, model.pt: what measure_deployed takes
    arch: str
    target: str
    fits_chip: bool


@dataclass(frozen=True, kw_only=True)
class Measured(Result):
    written: Path  # the result JSON
    backend: str
    dataset: str
    accuracy: float
    n_samples: int
    rank: int = 0


@dataclass(frozen=True, kw_only=True)
class Exported(Result):
    out: Path
    arch: str
    head: str
    n_classes: int


@dataclass(frozen=True, kw_only=True)
class Report(Result):
    out: Path  # the folder holding report.md, report.json (and accuracy_vs_t.png)
    text: str  # report.md: Table 5 beside the paper's numbers


def _overrides(overrides: Overrides) -> dict[str, dict[str, Any]]:
    """A nested dict as is, or ["section.key=value", ...] as `--set` parses them."""
    from .training.recipe import parse_set

    if overrides is None:
        return {}
    if isinstance(overrides, dict):
        return {section: dict(values) for section, values in overrides.items()}
    if isinstance(overrides, str):
        raise SpeckMttError(f"overrides {overrides!r}: pass a list of section.key=value strings or a dict")
    return parse_set(list(overrides))


def load_recipe(recipe: str | Path, quick: bool = False, overrides: Overrides = None) -> Recipe:
    """A built-in recipe (nmnist, gesture, cifar10dvs) or a .toml file, validated; quick: its CI-sized
    [quick] section; overrides: {"train": {"epochs": 2}} or ["train.epochs=2"] (like --set)."""
    from .training.recipe import load_recipe as load

    return load(str(recipe), quick=quick, overrides=_overrides(overrides))


def train(recipe: str | Path | Recipe, *, out: str | Path | None = None, method: str | None = None,
          loss: str | None = None, epochs: int | None = None, phase: str = "base",
          from_checkpoint: str | Path | None = None, resume: bool = False, quick: bool = False,
          dataset: str | None = None, data_dir: str | Path | None = None, device: str | None = None,
          overrides: Overrides = None, threads: int | None = None,
          progress: bool | Callable[[str], None] = False) -> Trained:
    """`speck-mtt train`: one phase (base, or bias-removal from_checkpoint a base model) into out
    (default runs/RECIPE-METHOD[-quick]). method and epochs set the phase's section of the recipe.
    progress: True shows a bar and the run's messages on stderr; a function receives the messages."""
    from .files import output_lock
    from .training.loop import default_out, phase_settings, run, stderr_line
    from .training.recipe import Recipe, override

    if threads is not None:
        if threads < 1:
            raise SpeckMttError(f"--threads must be >= 1, got {threads}")
        import torch

        torch.set_num_threads(threads)
    changes = _overrides(overrides)
    section = "train" if phase == "base" else "bias_removal"
    for key, setting in (("method", method), ("epochs", epochs)):
        if setting is not None:
            changes.setdefault(section, {})[key] = setting
    if loss is not None:
        changes.setdefault("train", {})["loss"] = loss
    if dataset is not None:
        changes.setdefault("data", {})["dataset"] = dataset
    if isinstance(recipe, Recipe):
        if quick and not recipe.quick:
            raise SpeckMttError("quick=True needs a recipe name; pass sm.load_recipe(NAME, quick=True) instead")
        rec = override(recipe, changes)
    else:
        rec = load_recipe(recipe, quick=quick, overrides=changes)
    phase_settings(rec, phase)
    out = Path(out) if out is not None else default_out(rec, phase)
    log = stderr_line if progress is True else progress or None
    with output_lock(out):
        summary = run(rec, out, phase=phase, from_ckpt=from_checkpoint, resume=resume, device=device,
                      data_dir=data_dir, progress=progress is True, log=log)
    ev = summary["eval"]
    return Trained(data=summary, out=out, model=out / "model.pt", phase=summary["phase"], method=summary["method"],
                   accuracy=dict(zip(ev["t"], ev["accuracy"])), rank=_rank())


def deploy(checkpoint: str | Path, out: str | Path, *, target: str = "speck2e", device: str | None = None,
           dataset: str | None = None, data_dir: str | Path | None = None, samples: int = 8,
           frames: int | None = None, floor: float | None = None) -> Deployed:
    """`speck-mtt deploy`: lay a bias-free checkpoint (or a NIR graph) out for Speck2e (target
    "speck2e", must fit) or the simulator ("sim", any size) into out, with a SynOps estimate on
    `samples` test samples; device (e.g. "speck2edevkit:0") also uploads it (the real samna)."""
    from .chip.deploy import deploy as lay_out
    from .choices import Target, values
    from .files import output_lock

    if target not in values(Target):
        raise SpeckMttError(f"target {target!r}: choose one of {', '.join(values(Target))}")
    if device is not None and target != Target.speck2e.value:
        raise SpeckMttError("--device uploads to a Speck2e devkit: use it with --target speck2e")
    out = Path(out)
    with output_lock(out):
        summary = lay_out(Path(checkpoint), target, out, dataset=dataset, data_dir=data_dir, samples=samples,
                          frames=frames, floor=floor)
        if device is not None:
            try:
                from .chip.devkit import deploy_to_devkit
            except ImportError as exc:
                raise SpeckMttError(f"devkit support is not available ({exc}); the layout is in {out}") from exc
            deploy_to_devkit(out, device)
    return Deployed(data=summary, out=out, arch=summary["arch"], target=summary["target"],
                    fits_chip=bool(summary["fits_chip"]))


def measure_deployed(deploy_dir: str | Path, *, backend: str = "sim", dataset: str | None = None,
                     data_dir: str | Path | None = None, limit: int | None = None, t: Sequence[int] | None = None,
                     workers: int | None = None, float_mode: bool = False, record: str | Path | None = None,
                     compare: Sequence[str | Path] | None = None, out: str | Path | None = None,
                     floors: Sequence[float] | None = None, search_config: bool = False,
                     progress: bool | None = False) -> Measured:
    """`speck-mtt measure`: accuracy, spike difference against torch at each T in t and against
    recordings (compare), spikes, SynOps and speed of a deployment, on the simulator (backend "sim")
    or a devkit ("speck2e"); limit: only the first N test samples. Writes the result JSON (default
    DEPLOY_DIR/measure-<backend>.json). progress: the simulator's bar on stderr (None: when stderr
    is a terminal)."""
    from .choices import Backend, values
    from .files import output_lock
    from .measure import measure, search_deployed

    if backend not in values(Backend):
        raise SpeckMttError(f"backend {backend!r}: choose one of {', '.join(values(Backend))}")
    if floors and backend != Backend.sim.value:
        raise SpeckMttError("--floor sweeps the simulator; use it with --backend sim (re-deploy with "
                            "`speck-mtt deploy --floor` for the chip)")
    deploy_dir = Path(deploy_dir)
    out = None if out is None else Path(out)
    if not deploy_dir.is_dir():
        raise SpeckMttError(f"{deploy_dir}: no such folder; pass the folder written by `speck-mtt deploy`")
    if out is not None and out.is_dir():
        raise SpeckMttError(f"--out {out} is a folder; pass the path of the result .json")
    with output_lock(out.parent if out is not None else deploy_dir):
        report = measure(deploy_dir, backend, dataset, data_dir, limit, list(t) if t else None, workers, float_mode,
                         None if record is None else Path(record), [Path(c) for c in compare or []] or None, out,
                         list(floors) if floors else None, progress)
        if report is not None and search_config:
            report["search"] = search_deployed(deploy_dir, report["dataset"], data_dir, limit)
    report = _from_rank0(report)
    return Measured(data=report, written=Path(report["written"]), backend=report["backend"],
                    dataset=report["dataset"], accuracy=report["accuracy"], n_samples=report["n_samples"],
                    rank=_rank())


def _from_rank0(report: dict[str, Any] | None) -> dict[str, Any]:
    """Rank 0's result on every rank (measure returns it on rank 0 only)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        box = [report]
        dist.broadcast_object_list(box, src=0)
        report = box[0]
    if report is None:
        raise SpeckMttError("the measurement returned nothing on this rank (a process group that rank 0 did not join?)")
    return report


def export_nir(checkpoint: str | Path, out: str | Path) -> Exported:
    """`speck-mtt export`: the checkpoint's Speck-ready network as a NIR graph file (thresholds,
    floors and head kept), for sinabs, snnTorch, Norse, Rockpool, Lava or `deploy`."""
    from .chip.nir_io import export_checkpoint
    from .files import output_lock

    out = Path(out)
    with output_lock(out.parent):
        meta = export_checkpoint(Path(checkpoint), out)
    return Exported(data={"out": str(out), "format": "nir", **meta}, out=out, arch=meta["arch"], head=meta["head"],
                    n_classes=int(meta["n_classes"]))


def write_report(results_dir: str | Path, *, out: str | Path | None = None, t: int | None = None,
                 dataset: str | None = None, plot: bool = True) -> Report:
    """`speck-mtt report`: Table 5 of a results folder (one sub-folder per method) beside the
    paper's numbers, written as report.md/report.json (and accuracy_vs_t.png) into out (default
    results_dir)."""
    from .files import output_lock
    from .report import render_report
    from .report import write_report as write

    out = Path(out if out is not None else results_dir)
    with output_lock(out):
        report = write(Path(results_dir), out, t, dataset, plot)
    return Report(data=report, out=out, text=render_report(report))
