"""Training recipes: TOML files (speck_mtt/recipes/*.toml or a path) over one schema of defaults.

A recipe has sections data, model, train, bias_removal, eval, and an optional [quick] holding
overrides for CI-sized runs (--quick). The section dataclasses below are the schema: every key
must be one of their fields with a value of the field's default's type (floats finite: nan/inf
are refused); anything else (an unknown key, an impossible T range, a negative weight decay or
batch count) is a one-line SpeckMttError raised before a run writes anything. A loaded recipe is
a frozen Recipe; its as_dict() is what checkpoints store.
"""

from __future__ import annotations

import copy
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import SpeckMttError
from ..models.networks import HEADS as NETWORK_HEADS
from ..models.neurons import DEFAULT_FLOOR, check_floor
from ..mtt.config import INPUT_STAGE_RULES, METHODS
from ..mtt.losses import LOSSES
from .bias_removal import RESCALE_MODES

OPTIMIZERS = ("adamw", "adam", "sgd")
HEADS = ("", *NETWORK_HEADS)  # "": the architecture's own
SCHEDULERS = ("cosine", "none")


@dataclass(frozen=True)
class DataSettings:
    dataset: str = "nmnist"            # a name of speck_mtt.data.DATASETS (real falls back to its -sim)
    data_dir: str = ""                 # "" = $SPECK_MTT_DATA or ./data
    batch_size: int = 64
    limit_train: int = 0               # 0 = every training sample; else a fixed-seed subset
    limit_test: int = 0
    augment: bool = False              # the training split only: the dataset's flip and roll, plus the two below
    roll_px: int = -1                  # roll by up to +-roll_px in x and y; -1: the dataset's own (registry)
    keep_min: float = 1.0              # keep a fraction U(keep_min, 1) of each recording's events (1: no thinning)
    allow_empty_classes: bool = False  # train even when a class folder holds no recording


@dataclass(frozen=True)
class ModelSettings:
    arch: str = "nmnist_3c1fc"
    bn: bool = True                    # base training with BN; the bias-removal phase absorbs it
    granularity: int = 1               # blocks per MTT stage
    floor: float = DEFAULT_FLOOR       # neurons' lower clamp in thresholds: training, layout and chip alike
    head: str = ""                     # "" = the architecture's own readout; if (spike count) | membrane


@dataclass(frozen=True)
class TrainSettings:
    method: str = "mtt"                # sdt | nmt | mtt | slt
    loss: str = "ce"                   # ce | tet
    tet_lambda: float = 1e-3
    t_min: int = 1
    t_max: int = 10                    # frames of the data; evaluation runs T = 1..t_max
    t_sdt: int = 0                     # SDT's fixed T (0 = t_max)
    draws: int = 3                     # M: configurations per optimizer step (mtt, nmt)
    input_stage: str = "keep"          # keep: stage 1 runs at the input frames (event data); draw: random
    input_frames: int = 0              # frames the data is cut into (0 = t_max); more: finer input that the
                                       # TTM groups down (MTT with input_stage=draw draws stage 1 up to it)
    random_bounds: bool = False        # group the input frames into stage 1's T at random cuts per sample
    epochs: int = 20
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    bias_decay: float = 0.0            # lambda x the mean squared bias BN absorption will drop (base phase, BN)
    scheduler: str = "cosine"
    seed: int = 0
    lock_bn: bool = False              # BN in eval mode while training (fine-tuning a trained model)
    calib_batches: int = 10            # BN calibration after training at uniform T_max (0 = off)
    tit_t: int = 0                     # TIT: SDT at this small T first (0 = off) ...
    tit_epochs: int = 0                # ... then this many final epochs at the target T


@dataclass(frozen=True)
class BiasRemovalSettings:
    method: str = "mtt"                # mtt, or sdt for the baseline
    epochs: int = 20
    lr: float = 1e-4
    weight_decay: float = 0.0
    shrink_epochs: int = 0             # K > 0: the dropped bias shrinks linearly to exactly 0 over K epochs
    rescale: str = "none"              # none | rate | percentile: per-layer weight scale matching the BN model
    distill: float = 0.0               # weight of KL(BN base model || network) on time-mean outputs (0 = off)
    probe_batches: int = 4             # training batches for the per-layer rates and the rescaling
    t_max: int = 0                     # > 0: fine-tune at this T_max (finer frames, closer to the chip); 0: train.t_max


@dataclass(frozen=True)
class EvalSettings:
    ts: tuple[int, ...] = ()           # T to evaluate at the end; () = 1..t_max
    epoch_ts: tuple[int, ...] = ()     # T evaluated after every epoch; () = (t_min, t_max)
    batch_size: int = 128


SECTIONS = {"data": DataSettings, "model": ModelSettings, "train": TrainSettings,
            "bias_removal": BiasRemovalSettings, "eval": EvalSettings}
# The defaults of every key (their types are the schema), as plain values (lists, not tuples).
SCHEMA: dict[str, dict[str, Any]] = {
    name: {f.name: list(f.default) if isinstance(f.default, tuple) else f.default for f in fields(cls)}
    for name, cls in SECTIONS.items()}


@dataclass(frozen=True)
class Recipe:
    """A validated recipe: its name, whether it is the --quick variant, and its five sections."""

    name: str
    quick: bool
    data: DataSettings = field(default_factory=DataSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    bias_removal: BiasRemovalSettings = field(default_factory=BiasRemovalSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)

    @classmethod
    def from_dict(cls, recipe: dict[str, Any]) -> Recipe:
        sections = {name: kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in recipe[name].items()})
                    for name, kind in SECTIONS.items()}
        return cls(recipe["name"], recipe["quick"], **sections)

    def for_phase(self, phase: str) -> Recipe:
        """The recipe a phase runs: bias removal at bias_removal.t_max (when set) as its train.t_max,
        so frames, draws, evaluation and the checkpoint's T_max all follow it."""
        out = self
        if phase == "bias-removal" and self.bias_removal.t_max:
            out = replace(self, train=replace(self.train, t_max=self.bias_removal.t_max))
        _check_eval_ts(asdict(self.eval), out.train.t_max, f"T_max of the {phase} phase")
        return out

    def as_dict(self) -> dict[str, Any]:
        """The recipe as checkpoints store it: sections of plain values (lists, not tuples)."""
        out: dict[str, Any] = {name: {k: list(v) if isinstance(v, tuple) else v
                                      for k, v in asdict(getattr(self, name)).items()} for name in SECTIONS}
        return {**out, "name": self.name, "quick": self.quick}


def _fail(msg: str) -> SpeckMttError:
    return SpeckMttError(msg)


def _check_type(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, list):
        ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    else:
        ok = isinstance(value, str)
    if not ok:
        kind = "a finite float" if isinstance(default, float) else type(default).__name__
        raise _fail(f"recipe key {key} must be {kind}, got {value!r}")
    return value


def _merge(base: dict[str, dict[str, Any]], over: dict[str, Any], where: str) -> None:
    for section, values in over.items():
        if section not in SCHEMA or not isinstance(values, dict):
            raise _fail(f"{where}: unknown recipe section [{section}]; sections are {', '.join(SCHEMA)}")
        for key, value in values.items():
            if key not in SCHEMA[section]:
                raise _fail(f"{where}: unknown recipe key {section}.{key}; "
                            f"known keys: {', '.join(SCHEMA[section])}")
            base[section][key] = _check_type(f"{section}.{key}", value, SCHEMA[section][key])


def _recipe_dir():
    return resources.files("speck_mtt") / "recipes"


def builtin_recipes() -> list[str]:
    return sorted(p.name[:-5] for p in _recipe_dir().iterdir() if p.name.endswith(".toml"))


def _read(name_or_path: str) -> tuple[str, dict[str, Any]]:
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.is_file():
        text, name = path.read_text(), path.stem
    else:
        res = _recipe_dir() / f"{name_or_path}.toml"
        if not res.is_file():
            raise _fail(f"unknown recipe {name_or_path!r}; use one of {', '.join(builtin_recipes())} "
                        "or the path of a .toml file")
        text, name = res.read_text(), name_or_path
    try:
        return name, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(f"recipe {name_or_path}: invalid TOML ({exc})") from exc


def parse_set(items: list[str]) -> dict[str, dict[str, Any]]:
    """--set section.key=value (value parsed as TOML, bare words as strings) -> override dict."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise _fail(f"--set {item!r}: expected section.key=value, e.g. train.lr=5e-4")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        out.setdefault(section, {})[name] = value
    return out


def load_recipe(name_or_path: str, quick: bool = False, overrides: dict[str, dict[str, Any]] | None = None) -> Recipe:
    """Defaults <- recipe file <- its [quick] section (if quick) <- overrides; validated."""
    name, raw = _read(name_or_path)
    quick_over = raw.pop("quick", {})
    recipe = copy.deepcopy(SCHEMA)
    _merge(recipe, raw, f"recipe {name}")
    if quick:
        _merge(recipe, quick_over, f"recipe {name} [quick]")
    if overrides:
        _merge(recipe, overrides, "override")
    recipe["name"] = name
    recipe["quick"] = quick
    validate(recipe)
    return Recipe.from_dict(recipe)


def override(recipe: Recipe, overrides: dict[str, dict[str, Any]]) -> Recipe:
    """A loaded recipe with overrides on top, validated like load_recipe's."""
    if not overrides:
        return recipe
    raw = recipe.as_dict()
    _merge(raw, overrides, "override")
    validate(raw)
    return Recipe.from_dict(raw)


def _check_eval_ts(ev: dict[str, Any], t_max: int, what: str) -> None:
    for key in ("ts", "epoch_ts"):
        bad = [t for t in ev[key] if not 1 <= t <= t_max]
        if bad:
            raise _fail(f"eval.{key} {bad} outside [1, {what}={t_max}]")


def validate(recipe: dict[str, Any]) -> None:
    """Cross-key rules (types were checked on merge)."""
    tr, data, ev = recipe["train"], recipe["data"], recipe["eval"]
    if tr["method"] not in METHODS or recipe["bias_removal"]["method"] not in METHODS:
        raise _fail(f"unknown training method; choose one of {', '.join(METHODS)}")
    if tr["loss"] not in LOSSES:
        raise _fail(f"unknown loss {tr['loss']!r}; choose one of {', '.join(LOSSES)}")
    if tr["input_stage"] not in INPUT_STAGE_RULES:
        raise _fail(f"train.input_stage must be one of {', '.join(INPUT_STAGE_RULES)}")
    if tr["optimizer"] not in OPTIMIZERS or tr["scheduler"] not in SCHEDULERS:
        raise _fail(f"train.optimizer must be one of {OPTIMIZERS}, train.scheduler one of {SCHEDULERS}")
    if not 1 <= tr["t_min"] <= tr["t_max"]:
        raise _fail(f"impossible T range [{tr['t_min']}, {tr['t_max']}]: need 1 <= train.t_min <= train.t_max")
    if recipe["bias_removal"]["t_max"] and not tr["t_min"] <= recipe["bias_removal"]["t_max"]:
        raise _fail(f"bias_removal.t_max {recipe['bias_removal']['t_max']} below train.t_min={tr['t_min']} "
                    "(0 = train.t_max)")
    if not 0 <= tr["t_sdt"] <= tr["t_max"] or not 0 <= tr["tit_t"] <= tr["t_max"]:
        raise _fail(f"train.t_sdt and train.tit_t must lie in [1, t_max={tr['t_max']}] (0 = default)")
    if tr["tit_t"] and tr["method"] != "sdt":
        raise _fail("TIT (train.tit_t) schedules SDT's fixed T; use it with train.method = \"sdt\"")
    if tr["tit_t"] and not 0 < tr["tit_epochs"] < tr["epochs"]:
        raise _fail("TIT needs 0 < train.tit_epochs < train.epochs (fine-tune epochs at the target T)")
    _check_eval_ts(ev, max(tr["t_max"], recipe["bias_removal"]["t_max"]), "the largest T_max of the phases")
    if tr["input_frames"] and tr["input_frames"] < max(tr["t_max"], recipe["bias_removal"]["t_max"]):
        raise _fail(f"train.input_frames {tr['input_frames']} below the T_max of a phase (train.t_max="
                    f"{tr['t_max']}, bias_removal.t_max={recipe['bias_removal']['t_max']}); 0 = T_max")
    if recipe["model"]["head"] not in HEADS:
        raise _fail(f"model.head {recipe['model']['head']!r}: choose one of {', '.join(repr(h) for h in HEADS)} "
                    "(\"\" = the architecture's own)")
    if data["roll_px"] < -1 or not 0 < data["keep_min"] <= 1:
        raise _fail(f"data.roll_px must be >= -1 (-1: the dataset's) and data.keep_min in (0, 1], got "
                    f"{data['roll_px']} and {data['keep_min']:g}")
    br = recipe["bias_removal"]
    if br["rescale"] not in RESCALE_MODES:
        raise _fail(f"bias_removal.rescale {br['rescale']!r}: choose one of {', '.join(RESCALE_MODES)}")
    if not 0 <= br["shrink_epochs"] <= br["epochs"]:
        raise _fail(f"bias_removal.shrink_epochs must lie in [0, bias_removal.epochs={br['epochs']}] "
                    f"(the bias must reach 0 before the end), got {br['shrink_epochs']}")
    positive = {"data.batch_size": data["batch_size"], "eval.batch_size": ev["batch_size"], "train.draws": tr["draws"],
                "model.granularity": recipe["model"]["granularity"], "train.epochs": tr["epochs"],
                "bias_removal.epochs": br["epochs"], "bias_removal.probe_batches": br["probe_batches"]}
    for key, value in positive.items():
        if value < 1:
            raise _fail(f"{key} must be >= 1, got {value}")
    if tr["lr"] <= 0 or recipe["bias_removal"]["lr"] <= 0:
        raise _fail(f"learning rates must be > 0, got train.lr={tr['lr']:g}, "
                    f"bias_removal.lr={recipe['bias_removal']['lr']:g}")
    non_negative = {"train.weight_decay": tr["weight_decay"], "train.bias_decay": tr["bias_decay"],
                    "bias_removal.weight_decay": br["weight_decay"], "bias_removal.distill": br["distill"],
                    "train.tet_lambda": tr["tet_lambda"], "train.calib_batches": tr["calib_batches"],
                    "train.tit_epochs": tr["tit_epochs"], "train.seed": tr["seed"],
                    "train.input_frames": tr["input_frames"],
                    "data.limit_train": data["limit_train"], "data.limit_test": data["limit_test"]}
    for key, value in non_negative.items():
        if value < 0:
            raise _fail(f"{key} must be >= 0, got {value:g}")
    try:
        check_floor(recipe["model"]["floor"])
    except SpeckMttError as exc:
        raise _fail(f"model.floor: {exc}") from None
