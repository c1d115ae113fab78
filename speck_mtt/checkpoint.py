"""The checkpoint format shared by train, deploy and measure (loaded with weights_only=True).

A checkpoint is a plain dict: format/version tags, the architecture and its kwargs, the model
weights (neuron states stripped), and whatever metadata the writer adds (recipe, method,
T range, phase, optimizer and RNG state for resuming, metrics).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from . import __version__
from .errors import SpeckMttError
from .files import load_torch, save_torch
from .models import SpikingNet, build_model

FORMAT = "speck-mtt-checkpoint"
_STATE_SUFFIXES = ("v_mem",)  # neuron state: depends on batch size, never part of a model


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if not k.endswith(_STATE_SUFFIXES)}


def make_checkpoint(model: SpikingNet, arch_kwargs: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {"format": FORMAT, "version": __version__, "arch": model.name, "arch_kwargs": dict(arch_kwargs),
            "model": model_state(model), **meta}


def save_checkpoint(ckpt: dict[str, Any], path: Path) -> None:
    save_torch(ckpt, path)


# what every checkpoint holds, with its type; anything else is the writer's metadata
_REQUIRED = {"arch": str, "arch_kwargs": dict, "model": dict}


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at path; a foreign or incomplete file is a one-line error naming what is wrong."""
    ckpt = load_torch(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise SpeckMttError(f"{path}: not a speck-mtt checkpoint (no '{FORMAT}' tag); "
                            "pass a checkpoint written by `speck-mtt train`")
    for key, kind in _REQUIRED.items():
        if not isinstance(ckpt.get(key), kind):
            found = "missing" if key not in ckpt else f"a {type(ckpt[key]).__name__}"
            raise SpeckMttError(f"{path}: damaged speck-mtt checkpoint: '{key}' should be a {kind.__name__}, "
                                f"is {found}; retrain or restore the file")
    return ckpt


# Checkpoints written before the floor was a setting hold no "floor": they were trained at -1 theta
# (the neuron states, min_v_mem included, are not part of the saved weights).
LEGACY_FLOOR = -1.0
_FLOOR_ARCHS = ("nmnist_3c1fc", "gesture_4c2fc", "vggsnn")


def arch_kwargs_of(ckpt: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(ckpt.get("arch_kwargs", {}))
    if ckpt.get("arch") in _FLOOR_ARCHS:
        kwargs.setdefault("floor", LEGACY_FLOOR)
    return kwargs


# The dataset an architecture is measured on when neither the user nor the checkpoint names one.
DEFAULT_DATASET = {"nmnist_3c1fc": "nmnist", "gesture_4c2fc": "gesture", "vggsnn": "cifar10dvs"}
# Spellings of the frame count (T_max) in checkpoints: ours write t_max; imported graphs (NIR) and
# older writers used the others.
FRAME_KEYS = ("t_max", "T_max", "T", "n_frames", "frames")


def meta_value(ckpt: dict[str, Any], *keys: str) -> Any:
    """A metadata value from the checkpoint's top level, else from its recipe dict (if it has one)."""
    recipe = ckpt.get("recipe") if isinstance(ckpt.get("recipe"), dict) else {}
    for source in (ckpt, recipe):
        for key in keys:
            if source.get(key) is not None and not isinstance(source[key], (dict, list)):
                return source[key]
    return None


def _recipe_section(ckpt: dict[str, Any], section: str) -> dict[str, Any]:
    recipe = ckpt.get("recipe") if isinstance(ckpt.get("recipe"), dict) else {}
    return recipe.get(section) if isinstance(recipe.get(section), dict) else {}


def dataset_of(ckpt: dict[str, Any]) -> str | None:
    """The dataset the checkpoint was trained on (as the recipe named it), if it records one."""
    return meta_value(ckpt, "dataset") or _recipe_section(ckpt, "data").get("dataset")


def t_max_of(ckpt: dict[str, Any]) -> int | None:
    """The frame count T_max the checkpoint was trained at, if it records one."""
    t = meta_value(ckpt, *FRAME_KEYS) or _recipe_section(ckpt, "train").get("t_max")
    return int(t) if t else None


def recipe_name_of(ckpt: dict[str, Any]) -> str | None:
    """The name of the recipe the checkpoint was trained with (a recipe dict's name, or a plain string)."""
    recipe = meta_value(ckpt, "name") if isinstance(ckpt.get("recipe"), dict) else ckpt.get("recipe")
    return recipe if isinstance(recipe, str) else None


def model_from_checkpoint(ckpt: dict[str, Any], source: str | Path = "checkpoint") -> SpikingNet:
    """Rebuild the network and load its weights; a foreign architecture is a one-line error."""
    try:
        model = build_model(ckpt["arch"], **arch_kwargs_of(ckpt))
    except TypeError as exc:  # an argument the architecture does not take
        raise SpeckMttError(f"{source}: arch_kwargs {ckpt.get('arch_kwargs')} do not fit architecture "
                            f"{ckpt['arch']} ({exc}); was it written by another speck-mtt version?") from exc
    try:
        missing, unexpected = model.load_state_dict(ckpt["model"], strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise SpeckMttError(f"{source}: weights do not match architecture {ckpt['arch']} "
                            f"({str(exc).splitlines()[-1].strip()}); was it written for another model?") from exc
    missing = [k for k in missing if not k.endswith(_STATE_SUFFIXES)]
    if missing or unexpected:
        raise SpeckMttError(f"{source}: weights do not match architecture {ckpt['arch']} "
                            f"(missing {missing[:3]}, unexpected {unexpected[:3]}); was it written for another model?")
    return model
