"""What speck-mtt knows about each dataset: sensor, classes, recipe T, augmentation, folder layout."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import tonic

from ..errors import DataError
from .functional.gestures import CLASSES as GESTURE_CLASSES
from .functional.gestures import FLIP_LABEL as GESTURE_FLIP_LABEL


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset: its sensor (W, H, 2), classes, recipe frame count and augmentation policy."""

    name: str
    sensor_size: tuple[int, int, int]
    n_classes: int
    real: bool
    classes: tuple[str, ...]
    default_frames: int  # the recipe's T (paper settings)
    flip_label: tuple[int, ...] | None  # label after a left-right flip; None: no flip augmentation
    roll_px: int  # augmentation: roll frames by up to +-roll_px in x and y (0: none)
    stand_in: str | None  # built-in offline replacement of a real dataset
    layout: str  # folder layout under --data-dir
    description: str
    bundled: bool = False  # shipped in the package (data.bundled), unpacked into --data-dir on first use
    eval_only: bool = False  # an evaluation set: its recordings form the "test" split, training is refused


_IDENTITY10 = tuple(range(10))
REAL800 = "nmnist-real800"  # the real recordings every N-MNIST stand-in result is also measured on
REAL800_LABEL = "real N-MNIST (800, train split ids 1-800)"

DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("nmnist", (34, 34, 2), 10, True, tuple(tonic.datasets.NMNIST.classes), 10, None, 0,
                    "nmnist-sim", "<data-dir>/NMNIST/{Train,Test}/<digit 0-9>/<id>.bin",
                    "N-MNIST (Orchard et al. 2015), the extracted Train/Test folders"),
        DatasetInfo("nmnist-sim", (34, 34, 2), 10, False, tuple(tonic.datasets.NMNIST.classes), 10, None, 0,
                    None, "<data-dir>/nmnist-sim/NMNIST/{Train,Test}/<digit 0-9>/<id>.bin (generated)",
                    "simulated N-MNIST: three saccades over the real MNIST t10k digits"),
        DatasetInfo(REAL800, (34, 34, 2), 10, True, tuple(tonic.datasets.NMNIST.classes), 10, None, 0,
                    None, "<data-dir>/nmnist-real800/NMNIST/Train/<digit 0-9>/<id>.bin (unpacked from the package)",
                    f"{REAL800_LABEL}, shipped with speck-mtt; evaluation only", bundled=True, eval_only=True),
        DatasetInfo("gesture", (128, 128, 2), 11, True, GESTURE_CLASSES, 40, GESTURE_FLIP_LABEL, 10,
                    "gesture-sim",
                    "<data-dir>/DVSGesture/{ibmGestureTrain,ibmGestureTest}/userNN_<lighting>/<label>.npy",
                    "IBM DVS-Gesture, tonic's preprocessed .npy files"),
        DatasetInfo("gesture-sim", (128, 128, 2), 11, False, GESTURE_CLASSES, 40, GESTURE_FLIP_LABEL, 10,
                    None,
                    "<data-dir>/gesture-sim/DVSGesture/{ibmGestureTrain,ibmGestureTest}/userNN_<lighting>/<label>.npy"
                    " (generated)",
                    "synthetic 11-class DVS-Gesture-like hand-blob recordings"),
        DatasetInfo("cifar10dvs", (128, 128, 2), 10, True, tuple(tonic.datasets.CIFAR10DVS.classes), 10,
                    _IDENTITY10, 20, None, "<data-dir>/CIFAR10DVS/<airplane|automobile|...|truck>/<id>.aedat4",
                    "CIFAR10-DVS (Li et al. 2017), 9:1 per-class split fixed by seed"),
        DatasetInfo("cifar10dvs-sim", (128, 128, 2), 10, False, tuple(tonic.datasets.CIFAR10DVS.classes), 10,
                    None, 20, None,
                    "<data-dir>/cifar10dvs-sim/CIFAR10DVS/<airplane|automobile|...|truck>/<id>.aedat4 (generated)",
                    "simulated CIFAR10-DVS: MNIST t10k digits (digit d in class folder d) over a textured "
                    "background, moved along a repeated closed loop in front of a 128x128 DVS, written as .aedat4"),
    )
}


def default_data_dir() -> Path:
    """$SPECK_MTT_DATA, else ./data."""
    return Path(os.environ.get("SPECK_MTT_DATA", "data"))


def data_root(data_dir: Path | str | None) -> Path:
    """The data dir to read: data_dir (given explicitly), else default_data_dir(). A path that
    exists but is not a folder (a mistyped --data-dir) is refused, never treated as empty."""
    where = Path(data_dir) if data_dir is not None else default_data_dir()
    if where.exists() and not where.is_dir():
        given = (f"--data-dir {where}" if data_dir is not None else
                 f"$SPECK_MTT_DATA={where}" if "SPECK_MTT_DATA" in os.environ else f"the default data dir {where}")
        raise DataError(f"{given} is a file, not a folder; pass the folder that holds the datasets")
    return where


def get_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}") from None
