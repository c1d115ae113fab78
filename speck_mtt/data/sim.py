"""Built-in offline datasets, generated lazily into tonic's own folder layouts and cached.

Each generated folder carries a marker (.speck_mtt_sim.json) holding the generator parameters and
their key. A different key wipes and regenerates that folder (it is ours: the marker is written
before the first file); a split marked complete is trusted without touching its files, so a
second call is instant. Every recording is written atomically and a split is marked complete only
after all of its recordings exist (and are synced), so a generation stopped half-way (a full
disk, SIGTERM, kill -9) is continued, never taken as complete. Every recording is seeded by (seed, its own id), so any subset (`limit`)
is generated alone and equals the same recording of the full set.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, WriteError
from ..files import atomic_write, remove_stale_temps
from .functional.gestures import GestureParams, encode_gesture_npy, simulate_gesture
from .functional.mnist_idx import load_t10k
from .functional.nmnist_bin import write_nmnist_bin
from .functional.aedat4 import write_aedat4
from .functional.rcls import SENSOR as DVS128, RCLSParams, simulate_rcls
from .functional.saccades import SaccadeParams, simulate_saccades
from .tonic_sets import CIFAR10DVSFiles, DVSGestureFiles, NMNISTFiles

MARKER = ".speck_mtt_sim.json"
PROGRESS_EVERY_S = 60.0  # a line with the remaining time while generating
SPLITS = ("train", "test")


def params_key(params: dict) -> str:
    """Short stable hash of generator parameters (JSON, sorted keys)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Item:
    """One recording: path relative to the tonic folder, its label, and what seeds it."""

    relpath: str
    label: int
    index: int  # nmnist-sim, cifar10dvs-sim: t10k digit index; gesture-sim: user number


def digit_split(name: str, seed: list[int], n_train: int, n_test: int, split: str) -> np.ndarray:
    """The t10k digit indices of one split: n_train + n_test distinct digits, drawn by `seed`."""
    if n_train + n_test > 10_000:
        raise DataError(f"{name}: n_train + n_test must be <= 10000 (the t10k digits), got {n_train + n_test}")
    perm = np.random.default_rng(seed).permutation(10_000)
    return perm[:n_train] if split == "train" else perm[n_train:n_train + n_test]


@dataclass(frozen=True)
class NMNISTSim:
    """nmnist-sim: split by digit image, n_train + n_test distinct t10k digits."""

    saccades: SaccadeParams = field(default_factory=SaccadeParams)
    n_train: int = 8000
    n_test: int = 2000
    folder: str = "nmnist-sim/NMNIST"

    def as_dict(self) -> dict:
        return {"generator": "nmnist-sim", "n_train": self.n_train, "n_test": self.n_test,
                "saccades": self.saccades.as_dict()}

    def items(self, split: str) -> list[Item]:
        """The split's recordings in tonic's listing order (digit folder, then file name)."""
        ids = digit_split("nmnist-sim", [self.saccades.seed, 1], self.n_train, self.n_test, split)
        labels = load_t10k()[1]
        folder = "Train" if split == "train" else "Test"
        items = [Item(f"{folder}/{labels[i]}/{i:05d}.bin", int(labels[i]), int(i)) for i in ids]
        return sorted(items, key=lambda it: it.relpath)

    def write(self, root: Path, item: Item) -> None:
        events = simulate_saccades(load_t10k()[0][item.index], self.saccades, item.index)
        write_nmnist_bin(root / item.relpath, events)

    @staticmethod
    def open(save_to: Path, train: bool) -> NMNISTFiles:
        """The tonic dataset over the generated files of one split."""
        return NMNISTFiles(str(save_to), train=train)


@dataclass(frozen=True)
class GestureSim:
    """gesture-sim: one recording per class in each of a user's lighting folders; train users 1..,
    test users 24.. (DVS-Gesture's subject split: no subject in both)."""

    gestures: GestureParams = field(default_factory=GestureParams)
    folder: str = "gesture-sim/DVSGesture"

    def as_dict(self) -> dict:
        return {"generator": "gesture-sim", "gestures": self.gestures.as_dict()}

    def items(self, split: str) -> list[Item]:
        users = range(1, self.gestures.train_users + 1) if split == "train" else range(24, 24 + self.gestures.test_users)
        folder = "ibmGestureTrain" if split == "train" else "ibmGestureTest"
        items = [Item(f"{folder}/user{u:02d}_{light}/{label}.npy", label, u)
                 for u in users for light in self.gestures.lighting(u) for label in range(11)]
        return sorted(items, key=lambda it: it.relpath)

    def write(self, root: Path, item: Item) -> None:
        lighting = item.relpath.split("/")[1].split("_", 1)[1]
        events = simulate_gesture(item.label, item.index, lighting, self.gestures)
        atomic_write(root / item.relpath, lambda fh: np.save(fh, encode_gesture_npy(events)), fsync=False)

    @staticmethod
    def open(save_to: Path, train: bool) -> DVSGestureFiles:
        return DVSGestureFiles(str(save_to), train=train)


# recordings per split of each cifar10dvs-sim version: v2 has 500 test recordings, so 1 pp = 5
CIFAR_SIM_COUNTS = {1: (500, 100), 2: (2000, 500)}


@dataclass(frozen=True)
class CIFAR10DVSSim:
    """cifar10dvs-sim: split by digit image (n_train + n_test distinct t10k digits), both splits in
    one CIFAR10DVS folder as the real dataset has; digit d is written into the folder of class d."""

    rcls: RCLSParams = field(default_factory=RCLSParams)
    n_train: int = CIFAR_SIM_COUNTS[2][0]
    n_test: int = CIFAR_SIM_COUNTS[2][1]
    folder: str = "cifar10dvs-sim/CIFAR10DVS"

    @classmethod
    def of_version(cls, version: int) -> "CIFAR10DVSSim":
        """The generator of cifar10dvs-sim version 1 or 2: its parameters and its split sizes."""
        rcls = RCLSParams.of_version(version)
        n_train, n_test = CIFAR_SIM_COUNTS[version]
        return cls(rcls=rcls, n_train=n_train, n_test=n_test)

    def as_dict(self) -> dict:
        return {"generator": "cifar10dvs-sim", "n_train": self.n_train, "n_test": self.n_test,
                "rcls": self.rcls.as_dict()}

    def items(self, split: str) -> list[Item]:
        """The split's recordings in tonic's listing order (class folder, then file name)."""
        ids = digit_split("cifar10dvs-sim", [self.rcls.seed, 2], self.n_train, self.n_test, split)
        labels = load_t10k()[1]
        names = list(CIFAR10DVSFiles.classes)
        items = [Item(f"{names[labels[i]]}/{i:05d}.aedat4", int(labels[i]), int(i)) for i in ids]
        return sorted(items, key=lambda it: it.relpath)

    def write(self, root: Path, item: Item) -> None:
        events = simulate_rcls(load_t10k()[0][item.index], self.rcls, item.index)
        write_aedat4(root / item.relpath, events, DVS128[0], DVS128[1])

    @staticmethod
    def open(save_to: Path, train: bool) -> CIFAR10DVSFiles:
        return CIFAR10DVSFiles(str(save_to))


GENERATORS = {"nmnist-sim": NMNISTSim(), "gesture-sim": GestureSim(), "cifar10dvs-sim": CIFAR10DVSSim()}


def _claim(root: Path, spec: dict) -> dict:
    """Read (or create) the marker of `root`; wipe the folder if it was made with other parameters."""
    marker = root / MARKER
    key = params_key(spec)
    if marker.is_file():
        try:
            state = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            state = {}
        if state.get("key") == key:
            return state
        if state.get("spec", {}).get("generator") != spec["generator"]:
            raise DataError(f"{marker}: not a {spec['generator']} marker; remove {root} or pick another --data-dir")
        shutil.rmtree(root)  # ours, made with other generator parameters
    elif root.exists() and any(root.iterdir()):
        raise DataError(f"{root} holds files speck-mtt did not generate; remove it or pick another --data-dir")
    state = {"spec": spec, "key": key, "complete": []}
    _save_marker(root, state)
    return state


def _save_marker(root: Path, state: dict, fsync: bool = False) -> None:
    data = json.dumps(state, indent=2).encode()
    atomic_write(root / MARKER, lambda fh: fh.write(data), fsync=fsync)


def ensure_generated(name: str, data_dir: Path, split: str, wanted: Sequence[Item],
                     generator=None, progress: Callable[[str], None] | None = None, workers: int = 1) -> Path:
    """Generate the missing recordings of `wanted`; returns the tonic save_to folder.

    A split is marked complete (and never checked again) once all its recordings exist; every file
    is written atomically, so a killed run leaves whole recordings and the next one makes the rest.
    workers > 1: that many processes (`data prepare --workers`: 2,500 VGGSNN-sized recordings are
    about 12 minutes on one core).
    """
    gen = generator or GENERATORS[name]
    root = Path(data_dir) / gen.folder
    spec = gen.as_dict()
    state = _claim(root, spec)
    if split in state["complete"]:
        return root.parent
    missing = [it for it in wanted if not (root / it.relpath).is_file()]
    say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
    for folder in {root, *((root / it.relpath).parent for it in missing)}:
        remove_stale_temps(folder)  # half-written recordings of killed generators (never locked)
    if missing:
        say(f"{name}: generating {len(missing)} {split} recordings under {root} (one-off, cached; "
            "an interrupted run continues where it stopped)")
        start = last = time.perf_counter()
        k = 0
        try:
            for k, _ in enumerate(_written(gen, root, missing, workers), 1):
                now = time.perf_counter()
                if now - last >= PROGRESS_EVERY_S:
                    last = now
                    left = (now - start) / k * (len(missing) - k)
                    say(f"{name}: {k}/{len(missing)} {split} recordings ({now - start:.0f} s, about {left / 60:.1f} min left)")
        except WriteError as exc:
            raise WriteError(f"{exc}; the {k} {split} recordings generated before it are kept and the "
                             "split is not marked complete: rerun to continue", exc.path) from None
    everything = gen.items(split)
    if len(wanted) == len(everything) or all((root / it.relpath).is_file() for it in everything):
        os.sync()  # the recordings reach the disk before the marker that vouches for them
        state["complete"] = sorted(set(state["complete"]) | {split})
        _save_marker(root, state, fsync=True)
    return root.parent


def _written(gen, root: Path, items: Sequence[Item], workers: int) -> Iterator[Item]:
    """Write the items (in worker processes when workers > 1), yielding each once it is on disk."""
    if workers <= 1 or len(items) < 2:
        for item in items:
            gen.write(root, item)
            yield item
        return
    # spawn: a forked child can deadlock on the parent's running OpenMP pool (torch)
    with ProcessPoolExecutor(min(workers, len(items)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(gen.write, root, item): item for item in items}
        for done in as_completed(futures):
            done.result()
            yield futures[done]


def generator_spec(name: str) -> dict:
    """The parameters of a built-in dataset's generator (they key its caches)."""
    return GENERATORS[name].as_dict()
