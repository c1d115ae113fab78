"""Frame datasets: ToFrame counts cached ONCE per (dataset, split, T, sensor, transform, source).

The cache is one memory-mapped (N, T, 2, H, W) array per split (uint8 when every count fits,
else uint16) plus labels and meta.json, under
    <data-dir>/frame_cache/<dataset>/<split>-T<T>-<key>/
where key hashes the dataset, split, T, sensor size, the ToFrame transform, the generator
parameters (sim) or the real files' names, sizes and bytes (a recording changed in place, even at
the same size, gets a new cache), and the chosen samples (tonic's
DiskCachedDataset keys by index only, which would silently mix these up). Coarser T are derived
from the cached frames with speck_mtt.timegroups.resample_time (the TTM's grouping), never re-framed.
Augmentation (flip with label remap, roll, thinning) is applied per access, after the cache.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..files import remove_stale_temps, temp_name, write_error
from ..timegroups import resample_time
from .datasets import EventDataset, Source, open_source
from .functional.frames import augment_frames, to_frame_transform
from .registry import DATASETS, default_data_dir

CACHE_FORMAT = 1


def cache_spec(source: Source, n_frames: int) -> dict:
    """Everything the cached frames depend on."""
    info = DATASETS[source.name]
    samples = hashlib.sha256("\n".join(source.relpaths).encode()).hexdigest()[:16]
    return {
        "format": CACHE_FORMAT, "dataset": source.name, "split": source.split, "n_frames": n_frames,
        "sensor_size": list(info.sensor_size), "transform": repr(to_frame_transform(info.sensor_size, n_frames)),
        "source": source.fingerprint, "samples": samples, "n_samples": len(source.relpaths),
    }


def cache_dir_for(data_dir: Path, spec: dict) -> Path:
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return Path(data_dir) / "frame_cache" / spec["dataset"] / f"{spec['split']}-T{spec['n_frames']}-{key}"


def build_frame_cache(events: EventDataset, spec: dict, out: Path,
                      changed: Callable[[], str | None] = lambda: None) -> None:
    """Frame every recording once into out/frames.npy (atomic: built in a temporary folder).
    `changed` (Source.changed) is asked before the cache is put in place: a recording rewritten
    after the key was computed would otherwise be cached under its old bytes' key."""
    info = events.info
    n, t = len(events), spec["n_frames"]
    w, h, c = info.sensor_size
    tmp = temp_name(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(tmp.parent)  # half-built caches of killed runs
    tmp.mkdir()
    try:
        frame = to_frame_transform(info.sensor_size, t)
        wide = np.lib.format.open_memmap(tmp / "wide.npy", mode="w+", dtype=np.uint16, shape=(n, t, c, h, w))
        reserve(tmp / "wide.npy")
        labels = np.empty(n, dtype=np.int64)
        start, peak = time.perf_counter(), 0
        for i in range(n):
            ev, labels[i] = events[i]
            f = frame(ev)
            peak = max(peak, int(f.max()))
            wide[i] = f
            if (i + 1) % 2000 == 0:
                print(f"frame cache {spec['dataset']}/{spec['split']} T={t}: {i + 1}/{n}"
                      f" ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
        if peak <= np.iinfo(np.uint8).max:  # halve the cache when every count fits a byte
            narrow = np.lib.format.open_memmap(tmp / "frames.npy", mode="w+", dtype=np.uint8, shape=wide.shape)
            reserve(tmp / "frames.npy")
            narrow[:] = wide
            narrow.flush()
            del narrow
            del wide
            (tmp / "wide.npy").unlink()
        else:
            wide.flush()
            del wide
            (tmp / "wide.npy").rename(tmp / "frames.npy")
        np.save(tmp / "labels.npy", labels)
        (tmp / "meta.json").write_text(json.dumps({**spec, "max_count": peak}, indent=2))
        moved = changed()
        if moved:
            raise DataError(f"{moved} while its frames were being cached; nothing was cached: rerun once the "
                            "files stay put")
        try:
            tmp.rename(out)
        except OSError:  # another process finished the same cache first
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:  # disk full, file-size limit: reading errors are DataErrors (EventDataset)
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(out, exc, False) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def reserve(path: Path) -> None:
    """Allocate a memory-mapped file's blocks up front: on a full disk a store through the map
    is a SIGBUS that kills the process, posix_fallocate an ENOSPC that names the file."""
    with open(path, "r+b") as fh:
        try:
            os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without it: map as before
                raise


class FrameDataset(torch.utils.data.Dataset):
    """(float32 (T, 2, H, W) event counts, label) read from a frame cache, T derived by resample_time."""

    def __init__(self, cache_dir: Path, n_frames: int, augment: bool = False, roll_px: int | None = None,
                 keep_min: float = 1.0) -> None:
        self.cache_dir = Path(cache_dir)
        self.meta = json.loads((self.cache_dir / "meta.json").read_text())
        self.frames = np.load(self.cache_dir / "frames.npy", mmap_mode="r")
        self.labels = np.load(self.cache_dir / "labels.npy")
        self.n_frames = n_frames
        info = DATASETS[self.meta["dataset"]]
        self.augment = augment
        self.flip_label = info.flip_label
        self.roll_px = info.roll_px if roll_px is None else roll_px
        self.keep_min = keep_min

    def __getstate__(self) -> dict:
        # DataLoader workers started with spawn pickle the dataset: reopen the map, never copy it
        return {k: v for k, v in self.__dict__.items() if k != "frames"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.frames = np.load(self.cache_dir / "frames.npy", mmap_mode="r")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = resample_time(torch.from_numpy(self.frames[i].astype(np.float32)), self.n_frames, dim=0)
        label = int(self.labels[i])
        if self.augment:
            x, label = augment_frames(x, label, self.flip_label, self.roll_px, keep_min=self.keep_min)
        return x, label


def frame_dataset(name: str, split: str, n_frames: int, data_dir: Path | str | None = None,
                  limit: int | None = None, augment: bool = False, cache_frames: int | None = None,
                  roll_px: int | None = None, keep_min: float = 1.0) -> FrameDataset:
    """Frames at n_frames, from a cache built once at cache_frames (>= n_frames, default n_frames);
    with augment, roll_px (None: the dataset's) and keep_min apply (augment_frames)."""
    cache_frames = cache_frames or n_frames
    if n_frames < 1 or cache_frames < n_frames:
        raise DataError(f"need 1 <= n_frames <= cache_frames, got n_frames={n_frames}, cache_frames={cache_frames}")
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    source = open_source(name, split, data_dir, limit)
    spec = cache_spec(source, cache_frames)
    out = cache_dir_for(data_dir, spec)
    if not (out / "meta.json").is_file():
        build_frame_cache(EventDataset(source), spec, out, source.changed)
    return FrameDataset(out, n_frames, augment=augment, roll_px=roll_px, keep_min=keep_min)
