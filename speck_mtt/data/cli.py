"""`speck-mtt data info|prepare`: what a dataset holds and where, and one-off generation/caching."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..io import dumps_json
from .datasets import SPLITS, event_dataset, missing_splits, open_source
from .frames import frame_dataset
from .functional.mnist_idx import real_sample_path
from .functional.nmnist_bin import read_nmnist_bin
from .functional.stats import event_stats, summarize
from .registry import DATASETS, default_data_dir, get_info
from .sim import GENERATORS, generator_spec

app = typer.Typer(no_args_is_help=True, add_completion=False)

NameArg = Annotated[str, typer.Argument(help=f"dataset: {', '.join(DATASETS)}")]
DataDirOpt = Annotated[Optional[Path], typer.Option("--data-dir", help="dataset root (default $SPECK_MTT_DATA or ./data)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print a machine-readable summary to stdout")]

REAL_EVENTS = 4325  # the real sample's event count: nmnist-sim must stay within +-30% of it


def nmnist_sim_stats(data_dir: Path, n: int) -> dict:
    """Statistics of n nmnist-sim test recordings next to the real N-MNIST sample's, with the bounds."""
    ds = event_dataset("nmnist-sim", "test", data_dir, limit=n)
    sim = summarize([event_stats(ds[i][0]) for i in range(len(ds))])
    real = event_stats(read_nmnist_bin(real_sample_path()))
    checks = {
        "events_within_30pct_of_real": abs(sim["events"]["mean"] / real["events"] - 1) <= 0.3,
        "on_fraction_in_0.4_0.6": 0.4 <= sim["on_fraction"]["mean"] <= 0.6,
        "three_bursts": round(sim["bursts"]["mean"]) == 3,
        "polarity_overlap_within_50pct_of_real": abs(sim["polarity_overlap"]["mean"] / real["polarity_overlap"] - 1) <= 0.5,
    }
    return {"n_samples": len(ds), "simulated": sim, "real_sample": real, "checks": checks}


def _counts(name: str, data_dir: Path) -> dict | None:
    info = get_info(name)
    if not info.real:
        return {split: len(GENERATORS[name].items(split)) for split in ("train", "test")}
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


@app.command("info")
def info_cmd(
    name: NameArg,
    data_dir: DataDirOpt = None,
    json_out: JsonOpt = False,
    stats_samples: Annotated[int, typer.Option(help="nmnist-sim recordings to measure statistics on")] = 100,
) -> None:
    """Counts per split, sensor, classes, recipe T and files of a dataset (nmnist-sim: statistics vs the real sample)."""
    info = get_info(name)
    data_dir = data_dir or default_data_dir()
    counts = _counts(name, data_dir)
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
        summary["statistics"] = nmnist_sim_stats(data_dir, stats_samples)
    if json_out:
        typer.echo(dumps_json(summary))
        return
    typer.echo(f"{name}: {info.description}")
    typer.echo(f"  sensor {info.sensor_size}, {info.n_classes} classes, recipe T={info.default_frames}")
    typer.echo(f"  files: {summary['layout']}")
    if counts is None:
        typer.echo(f"  not present; offline stand-in: {info.stand_in or 'none'}")
    else:
        typer.echo(f"  train {counts['train']}, test {counts['test']} recordings")
    if "statistics" in summary:
        st = summary["statistics"]
        typer.echo(f"  statistics over {st['n_samples']} simulated test recordings (mean +- std) vs the real sample:")
        for key, real in st["real_sample"].items():
            s = st["simulated"][key]
            typer.echo(f"    {key:16s} {s['mean']:10.3f} +- {s['std']:8.3f}   real {real:10.3f}")
        typer.echo(f"  checks: {', '.join(k + ('=ok' if v else '=FAIL') for k, v in st['checks'].items())}")


@app.command("prepare")
def prepare_cmd(
    name: NameArg,
    data_dir: DataDirOpt = None,
    frames: Annotated[Optional[int], typer.Option(help="T of the frame cache (default: the recipe's T)")] = None,
    limit: Annotated[Optional[int], typer.Option(help="only this many recordings per split (quick runs)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Generate (built-in sets) or verify (real sets: every file is decoded) and build the frame cache."""
    info = get_info(name)
    data_dir = data_dir or default_data_dir()
    n_frames = frames or info.default_frames
    splits = {}
    for split in ("train", "test"):
        start = time.perf_counter()
        ds = frame_dataset(name, split, n_frames, data_dir, limit=limit)
        splits[split] = {"samples": len(ds), "frame_cache": str(ds.cache_dir), "seconds": round(time.perf_counter() - start, 2)}
    files = data_dir / (GENERATORS[name].folder if not info.real else info.layout.split("/")[1])
    summary = {"name": name, "files": str(files), "n_frames": n_frames, "splits": splits}
    if json_out:
        typer.echo(dumps_json(summary))
        return
    typer.echo(f"{name}: recordings under {files}")
    for split, s in splits.items():
        typer.echo(f"  {split}: {s['samples']} samples, frames T={n_frames} cached in {s['frame_cache']} ({s['seconds']} s)")
