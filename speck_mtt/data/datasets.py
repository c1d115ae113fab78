"""Event datasets: tonic's classes over real or generated files, validated, as (events, label).

Corrupt samples FAIL LOUDLY: reading a truncated/corrupt .bin or .npy, an empty recording or
events outside the sensor raises DataError naming the file and the problem (and the fix: delete
or replace it; for a -sim dataset delete its folder to regenerate). Nothing is skipped silently,
so an epoch or a frame cache never quietly loses samples.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, DataMissing
from .functional.events import check_events
from .functional.nmnist_bin import check_nmnist_file
from .bundled import unpack
from .registry import DATASETS, data_root, get_info
from .sim import GENERATORS, Item, ensure_generated, params_key
from .tonic_sets import CIFAR10DVSFiles, DVSGestureFiles, NMNISTFiles

SPLIT_SEED = 0  # fixes the cifar10dvs 9:1 per-class split and every `limit` subset
SPLITS = ("train", "test")


def subset(n: int, limit: int | None) -> list[int]:
    """`limit` indices of range(n) drawn with a fixed seed, in order; nested for growing limits."""
    if limit is None or limit >= n:
        return list(range(n))
    if limit < 1:
        raise DataError(f"limit must be >= 1, got {limit}")
    return sorted(np.random.default_rng(SPLIT_SEED).permutation(n)[:limit].tolist())


def _check_split(split: str) -> bool:
    if split not in SPLITS:
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    return split == "train"


@dataclass
class Source:
    """The files behind one (dataset, split, limit): known before anything is decoded or generated."""

    name: str
    split: str
    relpaths: list[str]
    labels: list[int]
    digest: Callable[[], str]  # -> fingerprint; asked for only when needed (real files are read)
    open: Callable[[], tuple[object, list[int]]]  # -> (tonic dataset, its indices of relpaths)
    empty_classes: list[str] = field(default_factory=list)  # classes of the split without a recording
    paths: list[str] = field(default_factory=list)  # the real files (none for a generated set)

    @cached_property
    def fingerprint(self) -> str:
        """Generator key (sim), or a hash of the real files' names, sizes and bytes, so a file
        changed in place (even at the same size) changes it."""
        self._stamps = [stat_stamp(p) for p in self.paths]  # before the bytes are read
        return self.digest()

    def changed(self) -> str | None:
        """'<file> was deleted' / '<file> was rewritten' for the first real file changed since the
        fingerprint was taken, else None. One stat per file (10,000 files: tens of ms): a write
        changes ctime even when it restores size and mtime."""
        if "fingerprint" not in self.__dict__:
            return None
        for path, stamp in zip(self.paths, self._stamps):
            try:
                now = stat_stamp(path)
            except FileNotFoundError:
                return f"{path} was deleted"
            if now != stamp:
                return f"{path} was rewritten"
        return None


# (path, size, mtime_ns, ctime_ns, inode) -> sha256: each file read once per process. ctime changes
# with every write (and with utime), so a rewrite that restores size and mtime is still seen.
_digests: dict[tuple, str] = {}


def stat_stamp(path: str | Path) -> tuple[int, int, int, int]:
    """(size, mtime_ns, ctime_ns, inode): changes with every write, replacement or utime."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (10,000 N-MNIST recordings: 0.5-1.6 s on 2 busy cores, page cache warm)."""
    key = (str(path), *stat_stamp(path))
    if key not in _digests:
        with open(path, "rb") as fh:
            _digests[key] = hashlib.file_digest(fh, "sha256").hexdigest()
    return _digests[key]


def content_key(paths: list[str], relpaths: list[str]) -> str:
    """Hash of the files' names (relative, so a moved data dir keeps its key), sizes and bytes."""
    h = hashlib.sha256()
    for path, rel in zip(paths, relpaths):
        h.update(f"{rel}:{os.path.getsize(path)}:{file_digest(path)}\n".encode())
    return h.hexdigest()[:16]


def _cifar_split(targets: list[int], train: bool) -> list[int]:
    """9:1 per-class split of CIFAR10-DVS, fixed by SPLIT_SEED."""
    chosen = []
    targets = np.asarray(targets)
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        perm = np.random.default_rng([SPLIT_SEED, int(c)]).permutation(len(idx))
        n_test = int(round(len(idx) / 10))
        chosen.extend(idx[perm[n_test:]] if train else idx[perm[:n_test]])
    return sorted(int(i) for i in chosen)


def _real_source(name: str, split: str, data_dir: Path, limit: int | None) -> Source:
    train = _check_split(split)
    info = get_info(name)
    if info.eval_only and train:
        raise DataError(f"{name} is an evaluation set ({info.description}); it has no training split: "
                        "train on nmnist-sim or nmnist and evaluate with `speck-mtt measure DEPLOY --dataset "
                        f"{name}`")
    if info.bundled:
        ds = NMNISTFiles(str(unpack(name, data_dir)), train=True)  # its recordings are N-MNIST Train files
        pool = list(range(len(ds.data)))
    elif name == "nmnist":
        ds = NMNISTFiles(str(data_dir), train=train)
        pool = list(range(len(ds.data)))
    elif name == "gesture":
        ds = DVSGestureFiles(str(data_dir), train=train)
        pool = list(range(len(ds.data)))
    else:
        ds = CIFAR10DVSFiles(str(data_dir))
        pool = _cifar_split(ds.targets, train)
    if not pool:
        raise DataMissing(f"no {name} {split} files under {ds.location_on_system}: expected {get_info(name).layout}")
    chosen = [pool[i] for i in subset(len(pool), limit)]
    base = Path(ds.location_on_system)
    paths = [ds.data[i] for i in chosen]
    relpaths = [Path(p).relative_to(base).as_posix() for p in paths]
    return Source(name, split, relpaths, [int(ds.targets[i]) for i in chosen], lambda: content_key(paths, relpaths),
                  lambda: (ds, chosen), list(ds.empty_classes), paths)


def _sim_source(name: str, split: str, data_dir: Path, limit: int | None) -> Source:
    train = _check_split(split)
    gen = GENERATORS[name]
    items: list[Item] = gen.items(split)
    wanted = [items[i] for i in subset(len(items), limit)]

    def open_() -> tuple[object, list[int]]:
        save_to = ensure_generated(name, data_dir, split, wanted)
        ds = gen.open(save_to, train)
        base = Path(ds.location_on_system)
        where = {Path(p).relative_to(base).as_posix(): i for i, p in enumerate(ds.data)}
        return ds, [where[it.relpath] for it in wanted]

    key = params_key(gen.as_dict())
    return Source(name, split, [it.relpath for it in wanted], [it.label for it in wanted], lambda: key, open_)


def open_source(name: str, split: str, data_dir: Path | str | None = None, limit: int | None = None) -> Source:
    """Locate a dataset split's files (real: listed by tonic; sim: known from its generator)."""
    info = get_info(name)
    data_dir = data_root(data_dir)
    make = _real_source if info.real else _sim_source
    return make(name, split, data_dir, limit)


class EventDataset(torch.utils.data.Dataset):
    """(events, label): EVENT_DTYPE structured array (x, y, p, t in us, sorted) and int label.

    Decoding is the wrapped tonic dataset's own __getitem__; files are checked before and events
    after, and any failure becomes a DataError naming the file (see the module docstring).
    """

    def __init__(self, source: Source) -> None:
        self.name, self.split = source.name, source.split
        self.info = DATASETS[source.name]
        self.tonic_dataset, self.indices = source.open()
        self.labels = list(source.labels)

    def __len__(self) -> int:
        return len(self.indices)

    def path(self, i: int) -> str:
        return self.tonic_dataset.data[self.indices[i]]

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        path = self.path(i)
        if path.endswith(".bin"):
            check_nmnist_file(path)
        try:
            events, label = self.tonic_dataset[self.indices[i]]
        except DataError:
            raise
        except ModuleNotFoundError as exc:
            raise DataError(f"{path}: reading it needs the '{exc.name}' package (pip install {exc.name})") from None
        except Exception as exc:  # numpy/tonic raise many types for truncated or malformed files
            msg = f"{type(exc).__name__}: {exc}".splitlines()[0]
            raise DataError(f"{path}: corrupt or unreadable recording ({msg}); delete or replace the file") from None
        return check_events(events, self.info.sensor_size, path, self.tonic_dataset.time_sortable), int(label)


def event_dataset(name: str, split: str, data_dir: Path | str | None = None, limit: int | None = None) -> EventDataset:
    """Dataset of (events, label) for one split; a -sim dataset is generated on first use."""
    return EventDataset(open_source(name, split, data_dir, limit))


def missing_splits(name: str, data_dir: Path | str | None = None) -> dict[str, str]:
    """The splits of a real dataset without any file under data_dir, with the reason (listing only).
    Files in a wrong layout are not "missing": their DataError propagates."""
    data_dir = data_root(data_dir)
    missing = {}
    for split in SPLITS:
        try:
            open_source(name, split, data_dir, limit=1)
        except DataMissing as exc:
            missing[split] = str(exc)
    return missing


def fingerprint_of(sources: list[Source]) -> str:
    """'<dataset> <train key> <test key>': the data a results folder (recipes/paper.sh) or a
    training run (`train --resume`) was made from; any changed file changes it."""
    return " ".join([sources[0].name, *(s.fingerprint for s in sources)])


def data_fingerprint(name: str, data_dir: Path | str | None = None) -> str:
    """fingerprint_of both whole splits of a dataset."""
    return fingerprint_of([open_source(name, split, data_dir) for split in SPLITS])


def resolve_dataset(name: str, data_dir: Path | str | None = None, fallback: bool | None = None) -> str:
    """The dataset to use for `name`: itself when usable, else its -sim stand-in (with a warning).

    The stand-in replaces a real dataset whose files are absent only when fallback is True or,
    by default, when no data dir was given (data_dir None: $SPECK_MTT_DATA or ./data); a data dir
    given explicitly without the files is a DataError naming the layout, as is a real dataset
    without a stand-in (cifar10dvs). A dataset with one split missing, or with files in a wrong
    layout, always raises.
    """
    info = get_info(name)
    missing = missing_splits(name, data_dir) if info.real and not info.bundled else {}
    if not missing:
        return name
    if len(missing) < len(SPLITS):  # half a dataset is a broken copy, not an absent one
        split, reason = next(iter(missing.items()))
        raise DataError(f"{name}: the {split} split is missing ({reason}) although the other split is there; "
                        "complete the copy (speck-mtt never falls back to a stand-in for half a dataset)")
    if (data_dir is None if fallback is None else fallback) and info.stand_in:
        print(f"warning: {name} files not found (expected {_layout(name, data_dir)}); using the built-in offline "
              f"stand-in {info.stand_in} instead (ask for it with --dataset {info.stand_in})", file=sys.stderr)
        return info.stand_in
    raise absent(name, data_dir)


def _layout(name: str, data_dir: Path | str | None) -> str:
    return get_info(name).layout.replace("<data-dir>", str(data_root(data_dir)))


def absent(name: str, data_dir: Path | str | None) -> DataError:
    """The error for a real dataset with no file under the data dir: the layout and the way out."""
    info = get_info(name)
    given = f" under --data-dir {data_dir}" if data_dir is not None else ""
    way = (f"; put them there, or use the built-in offline stand-in {info.stand_in} (e.g. --dataset {info.stand_in})"
           if info.stand_in else " (speck-mtt never downloads)")
    return DataError(f"{name} files not found{given}: expected {_layout(name, data_dir)}{way}")
