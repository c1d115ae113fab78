"""What a dataset holds and where: counts per split, statistics (beside the real recordings'), and
one-off generation and frame caching (`speck-mtt data info|prepare` print these)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from .datasets import SPLITS, absent, event_dataset, missing_splits, open_source, subset
from .frame_cache import frame_dataset
from .functional.stats import distributions, ks_distance, summarize
from .registry import REAL800, data_root, get_info
from .sim import GENERATORS, ensure_generated, generator_spec

MAX_KS = 0.4  # largest two-sample KS distance per statistic before nmnist-sim counts as drifted from real
# (generator version 3 reaches 0.37 at most on 200 test recordings, version 2 0.97: see README)


def dataset_distributions(name: str, data_dir: Path, n: int | None) -> dict:
    """Statistic samples of the first n test recordings (a fixed-seed subset) of a dataset."""
    ds = event_dataset(name, "test", data_dir, limit=n)
    return distributions([ds[i][0] for i in range(len(ds))])


def compare_to_real(sim: dict, real: dict) -> dict:
    """Each statistic of simulated and real recordings (from distributions), their KS distance and check."""
    ks = {key: ks_distance(sim[key], real[key]) for key in real}
    return {"n_samples": len(sim["events"]), "n_real": len(real["events"]), "reference": REAL800,
            "simulated": summarize(sim), "real": summarize(real), "ks": ks, "max_ks": MAX_KS,
            "checks": {key: bool(d <= MAX_KS) for key, d in ks.items()}}


def _per_class(name: str, data_dir: Path) -> dict[str, int]:
    labels = open_source(name, "test", data_dir).labels
    return {str(c): labels.count(c) for c in sorted(set(labels))}


def _counts(name: str, data_dir: Path) -> dict | None:
    info = get_info(name)
    if not info.real:
        return {split: len(GENERATORS[name].items(split)) for split in ("train", "test")}
    if info.eval_only:
        return {"train": 0, "test": len(open_source(name, "test", data_dir).relpaths)}
    missing = missing_splits(name, data_dir)
    if len(missing) == len(SPLITS):
        return None
    counts = {}
    for split in SPLITS:
        if split in missing:
            print(f"warning: {name} {split} split missing: {missing[split]}", file=sys.stderr)
            counts[split] = 0
            continue
        source = open_source(name, split, data_dir)
        counts[split] = len(source.relpaths)
        if source.empty_classes:
            print(f"warning: {name} {split}: no recordings of class {', '.join(source.empty_classes)}; training "
                  "stops on it unless --set data.allow_empty_classes=true", file=sys.stderr)
    return counts


def dataset_summary(name: str, data_dir: Path | None, stats_samples: int | None) -> dict[str, Any]:
    """Counts, sensor, classes, recipe T, files and (nmnist-sim, nmnist-real800) statistics of a dataset."""
    info = get_info(name)
    root = data_root(data_dir)
    counts = _counts(name, root)
    if counts is None and data_dir is not None:  # a data dir given for a real dataset it does not hold
        raise absent(name, data_dir)
    data_dir = root
    summary = {
        "name": name, "description": info.description, "real": info.real,
        "present": counts is not None, "counts": counts, "sensor_size": list(info.sensor_size),
        "n_classes": info.n_classes, "classes": list(info.classes), "recipe_frames": info.default_frames,
        "augmentation": {"flip": info.flip_label is not None, "flip_label": list(info.flip_label or []),
                         "roll_px": info.roll_px},
        "layout": info.layout.replace("<data-dir>", str(data_dir)), "stand_in": info.stand_in,
    }
    if not info.real:
        summary["generator"] = generator_spec(name)
    if name == "nmnist-sim":
        n = stats_samples or 200
        summary["statistics"] = compare_to_real(dataset_distributions(name, data_dir, n),
                                                dataset_distributions(REAL800, data_dir, n))
    if info.eval_only:
        summary["per_class"] = _per_class(name, data_dir)
        real = dataset_distributions(name, data_dir, stats_samples)
        summary["statistics"] = {"n_samples": len(real["events"]), "real": summarize(real)}
    return summary


def prepare(name: str, data_dir: Path | None, frames: int | None, limit: int | None,
            workers: int = 1) -> dict[str, Any]:
    """Generate (built-in sets, in `workers` processes) or verify (real sets: every file is decoded)
    and build the frame cache."""
    info = get_info(name)
    data_dir = data_root(data_dir)
    n_frames = frames or info.default_frames
    splits = {}
    for split in ("test",) if info.eval_only else ("train", "test"):
        start = time.perf_counter()
        if name in GENERATORS:
            items = GENERATORS[name].items(split)
            ensure_generated(name, data_dir, split, [items[i] for i in subset(len(items), limit)], workers=workers)
        ds = frame_dataset(name, split, n_frames, data_dir, limit=limit)
        splits[split] = {"samples": len(ds), "frame_cache": str(ds.cache_dir), "seconds": round(time.perf_counter() - start, 2)}
    files = data_dir / (GENERATORS[name].folder if not info.real else info.layout.split("/")[1])
    summary = {"name": name, "files": str(files), "n_frames": n_frames, "splits": splits}
    return summary
