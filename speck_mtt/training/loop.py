"""The training loop: base training (SDT/NMT/MTT/SLT) and the bias-removal phase, top to bottom.

    recipe -> data (frames at T_max) -> model -> optimizer -> [resume] -> epochs:
        each iteration: draw M temporal configurations; per draw forward + loss + backward
        (gradients add up); one optimizer step
        after each epoch: quick evaluation, metrics.json/.csv, OUT/last.pt (atomic)
    -> BN calibration (base phase, BN present) or absorption to a bn=False model (bias removal)
    -> accuracy at every T: OUT/eval.json/.csv/.png, the model in OUT/model.pt

Resuming restores weights, optimizer, scheduler, every RNG stream and the configuration
generator, and the data order is seeded per epoch, so a resumed run reproduces the
uninterrupted one exactly.
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Subset
from torch.utils.data.distributed import DistributedSampler

from .. import distributed as D
from ..checkpoint import arch_kwargs_of, load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
from ..choices import Phase, values
from ..errors import DataError, SpeckMttError, Stopped, WriteError, note_interrupt
from ..evaluate import eval_table, evaluate, save_eval
from ..files import save_json, save_text
from ..models import SpikingNet, build_model
from ..models.networks import switch_head
from ..models.neurons import set_floor
from ..mtt.config import ConfigSampler
from ..mtt.losses import make_loss
from ..timegroups import resample_time_random
from .bias_removal import BiasSchedule, Distiller, layer_rates, rescale_weights
from .bn import absorb_bn, bias_parameters, bias_penalty, calibrate_bn, has_bn, lock_bn, to_bias_free
from .recipe import Recipe

PHASES = values(Phase)


@dataclass(frozen=True)
class PhaseSettings:
    """What differs between the base phase and the bias-removal fine-tune."""

    name: str
    method: str
    epochs: int
    lr: float
    weight_decay: float
    lock_bn: bool
    bias_decay: float = 0.0  # base phase only: the bias-free fine-tune has no bias left to shrink


def phase_settings(recipe: Recipe, phase: str) -> PhaseSettings:
    if phase not in PHASES:
        raise SpeckMttError(f"unknown phase {phase!r}; choose one of {', '.join(PHASES)}")
    tr, br = recipe.train, recipe.bias_removal
    if phase == "base":
        decay = tr.bias_decay if recipe.model.bn else 0.0  # without BN no bias will be dropped
        return PhaseSettings(phase, tr.method, tr.epochs, tr.lr, tr.weight_decay, tr.lock_bn, decay)
    return PhaseSettings(phase, br.method, br.epochs, br.lr, br.weight_decay, True)


# ---------------------------------------------------------------------------------------------
# One epoch (also used by bench/bench_train.py)
# ---------------------------------------------------------------------------------------------

class NonFiniteLoss(SpeckMttError):
    """The loss or the weights became NaN/inf: training stops; last.pt keeps the last finite epoch."""


def non_finite_parameters(model: torch.nn.Module) -> list[str]:
    """Names of parameters holding NaN/inf; one device sync per call when all are finite."""
    params = list(model.named_parameters())
    if bool(torch.stack([torch.isfinite(p).all() for _, p in params]).all()):
        return []
    return [n for n, p in params if not bool(torch.isfinite(p).all())]


def train_epoch(model: SpikingNet, loader, sampler: ConfigSampler, loss_fn, optimizer: torch.optim.Optimizer,
                device: torch.device, bn_locked: bool = False, info: D.DistInfo = D.DistInfo(),
                progress=None, epoch: int = 0, distill: Distiller | None = None,
                bias_decay: float = 0.0, random_bounds: bool = False) -> dict[str, float]:
    """Per batch: for each of the iteration's configurations forward, loss, backward at once
    (so memory holds one forward), gradients summed; then one optimizer step. With `distill`,
    the teacher's output (once per batch) adds its KL term to every configuration's loss; with
    `bias_decay`, bias_decay x bias_penalty is added once per step; with `random_bounds`, stage 1
    groups the input frames at random cuts (timegroups.resample_time_random)."""
    model.train()
    if bn_locked:
        lock_bn(model)
    loss_sum, correct, seen = torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.float64), 0
    for step, (x, y) in enumerate(loader):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        target = distill.targets(x) if distill is not None else None
        for config in sampler.iteration():
            out = model(resample_time_random(x, config[0]) if random_bounds else x, config)
            loss = loss_fn(out, y)
            if distill is not None:
                loss = loss + distill.loss(out, target)
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"non-finite loss ({loss.item()}) in epoch {epoch + 1}, batch {step + 1}, "
                                    f"configuration {config}")
            loss.backward()
            loss_sum += loss.item() * len(y)
            correct += (out.detach().mean(1).argmax(1) == y).sum().item()
            seen += len(y)
        if bias_decay:
            (bias_decay * bias_penalty(model)).backward()
        D.allreduce_gradients(model, info)
        optimizer.step()
        bad = non_finite_parameters(model)
        if bad:
            raise NonFiniteLoss(f"non-finite weights ({', '.join(bad[:3])}) after epoch {epoch + 1}, batch {step + 1}")
        if progress is not None:
            progress(step, loss_sum.item() / seen, correct.item() / seen)
    totals = D.allreduce_sum(torch.stack([loss_sum, correct, torch.tensor(float(seen), dtype=torch.float64)]), info)
    n = max(totals[2].item(), 1.0)
    stats = {"train_loss": totals[0].item() / n, "train_acc": totals[1].item() / n}
    if bias_decay:
        stats["bias_penalty"] = bias_penalty(model).item()
    return stats


# ---------------------------------------------------------------------------------------------
# Pieces of a run
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Frames:
    """Train/test frames at T_max, and the facts about them a checkpoint records."""

    train: Dataset
    test: Dataset
    frame_shape: list[int]
    resolved: str | None = None  # the dataset read (a real name may have fallen back to its -sim)
    fingerprint: str | None = None  # checked by --resume
    sources: tuple = ()  # the data.datasets.Source of each split, asked after every epoch (check_unchanged)
    data_dir: str | None = None  # the folder the data was read from (absolute)


def load_frames(recipe: Recipe, data_dir: str | Path | None) -> Frames:
    """Train/test frames at T_max (or the finer train.input_frames) through speck_mtt.data (a real
    dataset falls back to its -sim)."""
    from ..data import DATASETS, frame_dataset, resolve_dataset
    from ..data.datasets import fingerprint_of, open_source
    from ..data.registry import data_root

    d, t_max = recipe.data, max(recipe.train.t_max, recipe.train.input_frames)
    data_dir = data_dir or d.data_dir or None
    name = resolve_dataset(d.dataset, data_dir)
    sources = [open_source(name, "train", data_dir, d.limit_train or None),
               open_source(name, "test", data_dir, d.limit_test or None)]
    for source in sources:
        if source.empty_classes and not d.allow_empty_classes:
            raise DataError(f"{name} {source.split}: no recordings of class {', '.join(source.empty_classes)} "
                            "(an empty class folder?); add them, or train anyway with "
                            "--set data.allow_empty_classes=true")
    fingerprint = fingerprint_of(sources)
    train = frame_dataset(name, "train", t_max, data_dir=data_dir, limit=d.limit_train or None, augment=d.augment,
                          roll_px=None if d.roll_px < 0 else d.roll_px, keep_min=d.keep_min)
    test = frame_dataset(name, "test", t_max, data_dir=data_dir, limit=d.limit_test or None)
    w, h, c = DATASETS[name].sensor_size
    return Frames(train, test, [c, h, w], name, fingerprint, tuple(sources), str(data_root(data_dir).resolve()))


def check_unchanged(frames: Frames, last: Path, epoch: int) -> None:
    """Stop once a recording the run started from is deleted or rewritten. Training reads frames
    cached from the files as they were, so nothing is mixed yet, but the run's fingerprint (and
    --resume, which compares it) would no longer describe the files."""
    for source in frames.sources:
        moved = source.changed()
        if moved:
            raise DataError(f"{moved} during training (seen after epoch {epoch}); {last} holds epoch {epoch}, "
                            "trained on the files as they were: restore the file and continue with --resume, "
                            "or start afresh in another --out")


def given_frames(train: Dataset, test: Dataset) -> Frames:
    """Frames handed in by the caller (tests, benchmarks) instead of speck_mtt.data."""
    return Frames(train, test, list(train[0][0].shape[1:]))


def recipe_record(recipe: Recipe, frames: Frames) -> dict[str, Any]:
    """The recipe as checkpoints store it, with the data facts (what was read, its fingerprint)."""
    record = recipe.as_dict()
    if frames.resolved is not None:
        record["data"].update(fingerprint=frames.fingerprint, resolved=frames.resolved)
    record["data"]["frame_shape"] = frames.frame_shape
    return record


def check_input_shape(model: SpikingNet, frame_shape: list[int]) -> None:
    if list(model.input_shape) != list(frame_shape):
        raise SpeckMttError(f"model {model.name} expects input {list(model.input_shape)} but the data frames are "
                            f"{list(frame_shape)}; pick the recipe's model.arch for this dataset")


@dataclass
class Setup:
    """The network a phase trains, the arguments that rebuild it, and for bias removal the BN
    model it came from (teacher, rate reference) and the biases absorption dropped."""

    model: SpikingNet
    arch_kwargs: dict[str, Any]
    base: SpikingNet | None = None
    dropped: list[torch.Tensor] | None = None


def base_setup(recipe: Recipe) -> Setup:
    arch_kwargs: dict[str, Any] = {"bn": recipe.model.bn, "floor": recipe.model.floor}
    if recipe.model.head:
        arch_kwargs["head"] = recipe.model.head
    return Setup(build_model(recipe.model.arch, **arch_kwargs), arch_kwargs)


def load_base(from_ckpt: Path, recipe: Recipe) -> dict[str, Any]:
    """The --from checkpoint of a bias-removal run, refused (one line naming it) before any data
    is generated or read."""
    if not Path(from_ckpt).is_file():
        raise SpeckMttError(f"--from {from_ckpt}: no such file; pass the model.pt of a base run "
                            "(`speck-mtt train RECIPE --out DIR` writes DIR/model.pt)")
    try:
        src = load_checkpoint(Path(from_ckpt))
    except SpeckMttError as exc:
        raise SpeckMttError(f"--from {exc}") from None
    if src["arch"] != recipe.model.arch:
        raise SpeckMttError(f"--from {from_ckpt}: a {src['arch']} checkpoint, but recipe {recipe.name} trains "
                            f"{recipe.model.arch}; pass the matching recipe or checkpoint")
    return src


def bias_removal_setup(recipe: Recipe, src: dict[str, Any], from_ckpt: Path, dev: torch.device) -> Setup:
    """The base checkpoint (load_base) with BN absorbed and the bias dropped, at the floor it will
    be deployed with, and with the recipe's readout (model.head) when it names another one than the base's."""
    model = model_from_checkpoint(src, from_ckpt)
    base = copy.deepcopy(model).to(dev).eval()
    arch_kwargs = {**arch_kwargs_of(src), "floor": recipe.model.floor}
    if recipe.model.head:
        model = switch_head(model, recipe.model.head, recipe.model.floor)
        arch_kwargs["head"] = recipe.model.head
    set_floor(model, recipe.model.floor)  # fine-tune at the floor it will be deployed with
    dropped = absorb_bn(model)  # drops the bias; BN stays as a locked identity
    return Setup(model, arch_kwargs, base, dropped)


NEURON_PARAMETERS = ("spike_threshold", "min_v_mem")  # sinabs registers these as parameters; they are fixed


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Weights (and unlocked BN affine terms); never the neuron threshold or floor."""
    return [p for n, p in model.named_parameters() if p.requires_grad and not n.endswith(NEURON_PARAMETERS)]


def make_optimizer(recipe: Recipe, ph: PhaseSettings, model: torch.nn.Module):
    params = trainable_parameters(model)
    name = recipe.train.optimizer
    if name == "adamw":
        opt = torch.optim.AdamW(params, lr=ph.lr, weight_decay=ph.weight_decay)
    elif name == "adam":
        opt = torch.optim.Adam(params, lr=ph.lr, weight_decay=ph.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=ph.lr, momentum=0.9, weight_decay=ph.weight_decay)
    if recipe.train.scheduler == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=ph.epochs)
    else:
        sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
    return opt, sched


def make_sampler(recipe: Recipe, ph: PhaseSettings, model: SpikingNet) -> ConfigSampler:
    tr = recipe.train
    return ConfigSampler(ph.method, model.n_stages(), tr.t_min, tr.t_max, t_input=tr.input_frames or tr.t_max,
                         draws=tr.draws, input_stage=tr.input_stage, seed=tr.seed)


def fixed_t(recipe: Recipe, epoch: int, epochs: int) -> int:
    """SDT's T this epoch: TIT trains at train.tit_t first and at the target T for the last tit_epochs."""
    tr = recipe.train
    target = tr.t_sdt or tr.t_max
    if tr.tit_t and epoch < epochs - tr.tit_epochs:
        return tr.tit_t
    return target


def train_loader(ds: Dataset, recipe: Recipe, epoch: int, info: D.DistInfo) -> DataLoader:
    """Shuffled with a per-epoch seed (so a resumed epoch sees the same order)."""
    seed = recipe.train.seed
    if info.enabled:
        sampler = DistributedSampler(ds, info.world_size, info.rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
    else:
        sampler = RandomSampler(ds, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return DataLoader(ds, batch_size=recipe.data.batch_size, sampler=sampler, num_workers=0)


def eval_loader(ds: Dataset, recipe: Recipe, info: D.DistInfo) -> DataLoader:
    part = Subset(ds, D.shard(len(ds), info)) if info.enabled else ds
    return DataLoader(part, batch_size=recipe.eval.batch_size, shuffle=False, num_workers=0)


def needs_calibration(model: SpikingNet, recipe: Recipe, ph: PhaseSettings) -> bool:
    """MTT/NMT/SLT leave BN running statistics wrong: recompute them unless BN is locked."""
    return ph.name == "base" and has_bn(model) and recipe.train.calib_batches > 0 and not ph.lock_bn


def calibration_batches(ds: Dataset, recipe: Recipe, epoch: int, info: D.DistInfo):
    """Training inputs in a fixed order (seeded by epoch, independent of the global RNG)."""
    return (x for x, _ in train_loader(ds, recipe, epoch, info))


def probe_batches(ds: Dataset, recipe: Recipe, info: D.DistInfo, device: torch.device) -> list[torch.Tensor]:
    """A few training inputs in a fixed order for per-layer statistics (global RNG untouched)."""
    state = torch.get_rng_state()
    n = recipe.bias_removal.probe_batches
    batches = [x.to(device) for x in itertools.islice(calibration_batches(ds, recipe, 20_000, info), n)]
    torch.set_rng_state(state)
    return batches


def epoch_eval_model(model: SpikingNet, recipe: Recipe, ph: PhaseSettings, ds: Dataset, epoch: int,
                     info: D.DistInfo, device: torch.device) -> SpikingNet:
    """The model as it would be if training stopped now: a BN-calibrated copy where needed, so the
    per-epoch accuracy is not spoiled by the running statistics MTT leaves behind."""
    if not needs_calibration(model, recipe, ph):
        return model
    state = torch.get_rng_state()  # augmentation draws must not shift the training RNG stream
    copy_ = copy.deepcopy(model)
    calibrate_bn(copy_, calibration_batches(ds, recipe, 10_000 + epoch, info), recipe.train.t_max,
                 recipe.train.calib_batches, device)
    torch.set_rng_state(state)
    return copy_


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)}}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))


def metrics_csv(rows: list[dict[str, Any]]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def default_out(recipe: Recipe, phase: str) -> Path:
    parts = [recipe.name, recipe.train.method if phase == "base" else recipe.bias_removal.method]
    parts += ["quick"] if recipe.quick else []
    parts += ["bias-removal"] if phase == "bias-removal" else []
    return Path("runs") / "-".join(parts)


def check_out_folder(out: Path, phase: str, from_ckpt: Path | None, resume: bool) -> None:
    """Refuse before anything is written: a bias-removal run without its base, a resume without a
    last.pt, a fresh run into a folder that holds one."""
    last, final = out / "last.pt", out / "model.pt"
    if phase == "bias-removal" and from_ckpt is None:
        raise SpeckMttError("--phase bias-removal needs --from CHECKPOINT (the base model.pt)")
    if resume and not last.is_file():
        raise SpeckMttError(f"--resume: {last} does not exist; start without --resume")
    if not resume and (last.exists() or final.exists()):
        raise SpeckMttError(f"{out} already holds a run (last.pt/model.pt); pass --resume or another --out")


def resumable(last: Path, phase: str, record: dict[str, Any], model: SpikingNet) -> dict[str, Any]:
    """last.pt, if it was written by this recipe, phase and architecture on the same data."""
    ck = load_checkpoint(last)
    if ck.get("phase") != phase or ck.get("recipe", {}).get("train") != record["train"] or ck["arch"] != model.name:
        raise SpeckMttError(f"{last} was written by another recipe/phase; resume with the same recipe, "
                            "--set overrides and --phase, or use another --out")
    was, now = ck.get("recipe", {}).get("data", {}).get("fingerprint"), record["data"].get("fingerprint")
    if was and now and was != now:
        raise SpeckMttError(f"{last} was trained on other data ({was}; now {now}); resume with the same "
                            "--dataset, --data-dir and files, or start afresh in another --out")
    return ck


def _progress_factory(enabled: bool):
    """A rich progress bar per epoch (stderr) showing loss and accuracy; None when disabled."""
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("left"), TimeRemainingColumn(), TextColumn("{task.fields[stats]}"),
                    console=Console(stderr=True))


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------

def stderr_line(line: str) -> None:
    print(line, file=sys.stderr)


@dataclass
class RunState:
    """How far a run got, for the line a stop (ctrl-C, SIGTERM, a failed write) ends with."""

    last: Path
    epochs: int = 0
    epoch: int | None = None  # the epoch in progress (1-based); None before the first
    saved: int | None = None  # the epoch last.pt holds; None until known
    bar: Any = None

    def where(self) -> str:
        if self.epoch is None:
            during = "before the first epoch"
        elif self.epoch == self.saved:
            during = f"after epoch {self.epoch}/{self.epochs}"
        else:
            during = f"during epoch {self.epoch}/{self.epochs}"
        if self.saved:
            return f"{during}; {self.last} holds epoch {self.saved}"
        if self.last.is_file():
            return f"{during}; {self.last} is unchanged"
        return f"{during}; no checkpoint written yet"


def run(recipe: Recipe, out: Path, phase: str = "base", from_ckpt: Path | None = None,
        resume: bool = False, device: str | None = None, data_dir: str | Path | None = None,
        datasets: tuple[Dataset, Dataset] | None = None, progress: bool = True,
        on_epoch: Callable[[int], None] | None = None,
        log: Callable[[str], None] | None = stderr_line) -> dict[str, Any]:
    """Train one phase into `out`; returns the summary (also what --json prints) on every rank.

    datasets: (train, test) frame datasets at T_max to use instead of speck_mtt.data (tests).
    progress: a rich bar per epoch on stderr. log: receives the run's messages (epochs, the
    accuracy table; rank 0 only), None: silent.
    on_epoch: called with the epoch number (1-based) once that epoch's last.pt is written.
    A stop half-way (ctrl-C, SIGTERM, a write that fails) says which epoch last.pt holds.
    """
    state = RunState(Path(out) / "last.pt")
    try:
        return _run(recipe, out, phase, from_ckpt, resume, device, data_dir, datasets, progress, on_epoch, log, state)
    except (KeyboardInterrupt, Stopped) as exc:
        note_interrupt(exc, state.where(), state.last.is_file())
        raise
    except WriteError as exc:
        resume_hint = "continue with --resume once it can be written" if state.last.is_file() else "rerun"
        raise WriteError(f"{exc}; training stopped {state.where()}; {resume_hint}", exc.path) from None
    finally:
        if state.bar is not None:
            state.bar.stop()


def _run(recipe: Recipe, out: Path, phase: str, from_ckpt: Path | None, resume: bool, device: str | None,
         data_dir: str | Path | None, datasets: tuple[Dataset, Dataset] | None, progress: bool,
         on_epoch: Callable[[int], None] | None, log: Callable[[str], None] | None,
         state: RunState) -> dict[str, Any]:
    recipe = recipe.for_phase(phase)
    ph = phase_settings(recipe, phase)
    tr = recipe.train
    out = Path(out)
    last, final = out / "last.pt", out / "model.pt"
    check_out_folder(out, phase, from_ckpt, resume)
    src = load_base(from_ckpt, recipe) if phase != "base" else None
    info, dev = D.init_distributed(D.resolve_device(device))
    say = log if info.is_main and log is not None else (lambda line: None)
    seed_everything(tr.seed)

    # --- data and model ---
    frames = load_frames(recipe, data_dir) if datasets is None else given_frames(*datasets)
    record = recipe_record(recipe, frames)
    setup = base_setup(recipe) if phase == "base" else bias_removal_setup(recipe, src, from_ckpt, dev)
    model, arch_kwargs, base = setup.model, setup.arch_kwargs, setup.base
    model.granularity = recipe.model.granularity
    check_input_shape(model, frames.frame_shape)
    model.to(dev)
    D.broadcast_model(model, info)
    if base is not None and bias_parameters(model):
        raise SpeckMttError(f"trainable bias parameters remain after absorption: {bias_parameters(model)}")

    loss_fn = make_loss(tr.loss, tr.tet_lambda)
    optimizer, scheduler = make_optimizer(recipe, ph, model)
    sampler = make_sampler(recipe, ph, model)
    epoch_ts = list(recipe.eval.epoch_ts) or sorted({tr.t_min, tr.t_max})
    test_loader = eval_loader(frames.test, recipe, info)
    metrics: list[dict[str, Any]] = []
    start = 0
    br = recipe.bias_removal
    schedule = BiasSchedule(model, setup.dropped, br.shrink_epochs) if base is not None and br.shrink_epochs else None
    distill = Distiller(base, tr.t_max, br.distill) if base is not None and br.distill > 0 else None
    before: dict[str, Any] | None = None  # the bias-free model's accuracy before fine-tuning
    if base is not None and not resume:
        before = start_bias_free(model, base, recipe, frames.train, test_loader, epoch_ts, info, dev, say)

    # --- resume ---
    if resume:
        ck = resumable(last, phase, record, model)
        model.load_state_dict(ck["model"], strict=False)
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        sampler.load_state_dict(ck["config_generator"])
        set_rng_state(ck["rng"])
        metrics, start, before = list(ck["metrics"]), int(ck["epoch"]), ck.get("eval_absorbed")
        state.saved = start
        say(f"resuming {out} after epoch {start}")

    def checkpoint(epoch: int, **extra: Any) -> dict[str, Any]:
        return make_checkpoint(model, arch_kwargs, recipe=record, method=ph.method, loss=tr.loss,
                               t_min=tr.t_min, t_max=tr.t_max, phase=phase, epoch=epoch,
                               granularity=model.granularity, metrics=metrics, eval_absorbed=before, **extra)

    # --- epochs ---
    bar = state.bar = _progress_factory(progress and info.is_main)
    if bar is not None:
        bar.start()
    phase_start = time.perf_counter()
    state.epochs = ph.epochs
    for epoch in range(start, ph.epochs):
        state.epoch = epoch + 1
        sampler.t_fixed = fixed_t(recipe, epoch, ph.epochs)
        bias_scale = schedule.set_epoch(epoch) if schedule is not None else None
        loader = train_loader(frames.train, recipe, epoch, info)
        t0 = time.perf_counter()
        tick = None
        if bar is not None:
            task = bar.add_task(f"epoch {epoch + 1}/{ph.epochs} {ph.method}", total=len(loader), stats="")
            tick = lambda i, l, a: bar.update(task, completed=i + 1, stats=f"loss {l:.4f} acc {100 * a:.1f}%")  # noqa: E731
        try:
            stats = train_epoch(model, loader, sampler, loss_fn, optimizer, dev, ph.lock_bn, info, tick, epoch,
                                distill, ph.bias_decay, tr.random_bounds)
        except NonFiniteLoss as exc:
            kept = f"{last} keeps the finite weights of epoch {epoch}" if epoch else "no checkpoint was written"
            lr_key = "train.lr" if phase == "base" else "bias_removal.lr"
            raise NonFiniteLoss(f"{exc}: training stopped; {kept}; lower the learning rate "
                                f"(--set {lr_key}=..., now {ph.lr:g})") from None
        scheduler.step()
        epoch_time = time.perf_counter() - t0
        quick = evaluate(epoch_eval_model(model, recipe, ph, frames.train, epoch, info, dev), test_loader, epoch_ts,
                         dev, reduce=lambda t: D.allreduce_sum(t, info))
        row = {"epoch": epoch + 1, **stats, "lr": optimizer.param_groups[0]["lr"], "epoch_time_s": epoch_time,
               **{f"test_acc_t{t}": a for t, a in zip(quick["t"], quick["accuracy"])},
               **({"bias_scale": bias_scale} if bias_scale is not None else {})}
        metrics.append(row)
        left = (time.perf_counter() - phase_start) / (epoch + 1 - start) * (ph.epochs - epoch - 1)
        say(f"epoch {epoch + 1}/{ph.epochs}: loss {stats['train_loss']:.4f} train acc {100 * stats['train_acc']:.2f}% "
            f"test {_fmt(quick)} ({epoch_time:.1f} s)"
            + (f" bias penalty {stats['bias_penalty']:.4f}" if "bias_penalty" in stats else "")
            + (f"; about {left / 60:.1f} min left in this phase" if epoch + 1 < ph.epochs else ""))
        if info.is_main:
            save_json(metrics, out / "metrics.json")
            save_text(metrics_csv(metrics), out / "metrics.csv")
            save_checkpoint(checkpoint(epoch + 1, optimizer=optimizer.state_dict(),
                                       scheduler=scheduler.state_dict(), rng=rng_state(),
                                       config_generator=sampler.state_dict()), last)
            state.saved = epoch + 1
        check_unchanged(frames, last, epoch + 1)
        D.barrier(info)
        if on_epoch is not None:
            on_epoch(epoch + 1)
    if bar is not None:
        bar.stop()
        state.bar = None

    # --- after training: BN statistics or a bias-free model ---
    if needs_calibration(model, recipe, ph):
        n = calibrate_bn(model, calibration_batches(frames.train, recipe, ph.epochs, info), tr.t_max,
                         tr.calib_batches, dev)
        say(f"BN calibrated on {n} training batches at uniform T={tr.t_max}")
    if base is not None:
        model, arch_kwargs = to_bias_free(model.cpu(), arch_kwargs)
        model.granularity = recipe.model.granularity
        model.to(dev)
        if before is not None and "layer_rates" in before:
            before["layer_rates"]["fine_tuned"] = layer_rates(model, probe_batches(frames.train, recipe, info, dev),
                                                              tr.t_max)
            say(f"firing rates per layer after the fine-tune: {_rates(before['layer_rates']['fine_tuned'])}")

    # --- accuracy at every T ---
    ts = list(recipe.eval.ts) or list(range(1, tr.t_max + 1))
    result = evaluate(model, test_loader, ts, dev, reduce=lambda t: D.allreduce_sum(t, info))
    result.update(method=ph.method, phase=phase, recipe=recipe.name, dataset=frames.resolved,
                  dataset_requested=recipe.data.dataset, data_dir=frames.data_dir)
    summary = {"out": str(out), "phase": phase, "method": ph.method, "loss": tr.loss, "epochs": ph.epochs,
               "arch": model.name, "arch_kwargs": arch_kwargs, "eval": result,
               "train_time_s": sum(m["epoch_time_s"] for m in metrics), "eval_absorbed": before}
    if info.is_main:
        save_eval(result, out / "eval")
        from ..plots import plot_accuracy_vs_t

        plot_accuracy_vs_t({f"{recipe.name} {ph.method} ({phase})": result}, out / "eval.png")
        save_checkpoint(checkpoint(ph.epochs, eval=result), final)
        say(_text(eval_table(result, f"{recipe.name} {ph.method} {phase}")))
        say(f"model: {final}")
    D.barrier(info)
    D.shutdown(info)
    return summary


def start_bias_free(model: SpikingNet, base: SpikingNet, recipe: Recipe, train_ds: Dataset,
                    test_loader, epoch_ts: list[int], info: D.DistInfo, dev: torch.device, say) -> dict[str, Any]:
    """After absorption: per-layer firing rates of the BN model and of the bias-dropped one, the
    optional rescaling, and the accuracy before fine-tuning (kept in the checkpoints as eval_absorbed)."""
    t_max, mode = recipe.train.t_max, recipe.bias_removal.rescale
    probe = probe_batches(train_ds, recipe, info, dev)
    rates = {"bn": layer_rates(base, probe, t_max), "dropped": layer_rates(model, probe, t_max)}
    reduce = lambda t: D.allreduce_sum(t, info)  # noqa: E731
    before = evaluate(model, test_loader, epoch_ts, dev, reduce=reduce)
    say(f"absorbed BN, bias dropped: accuracy {_fmt(before)}")
    say(f"firing rates per layer at T={t_max}: BN model {_rates(rates['bn'])}; bias dropped {_rates(rates['dropped'])}")
    if mode != "none":
        before["rescale_scales"] = rescale_weights(model, base, probe, t_max, mode)
        D.broadcast_model(model, info)
        rates["rescaled"] = layer_rates(model, probe, t_max)
        before["rescaled"] = evaluate(model, test_loader, epoch_ts, dev, reduce=reduce)
        say(f"weights rescaled ({mode}) by {', '.join(f'{s:.3f}' for s in before['rescale_scales'])}: "
            f"accuracy {_fmt(before['rescaled'])}; rates {_rates(rates['rescaled'])}")
    before["layer_rates"] = rates
    return before


def _text(renderable: Any) -> str:
    """A rich renderable (the accuracy table) as plain text for the log."""
    from rich.console import Console

    console = Console(file=io.StringIO(), width=100)
    console.print(renderable)
    return console.file.getvalue().rstrip("\n")


def _rates(rates: list[float]) -> str:
    return " ".join(f"{r:.4f}" for r in rates)


def _fmt(res: dict[str, Any]) -> str:
    return " ".join(f"T{t} {100 * a:.2f}%" for t, a in zip(res["t"], res["accuracy"]))
