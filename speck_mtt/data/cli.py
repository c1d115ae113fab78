"""`speck-mtt data info|prepare`: what a dataset holds and where, and one-off generation/caching."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..files import dumps_json
from .datasets import SPLITS, event_dataset, missing_splits, open_source
from .frames import frame_dataset
from .functional.stats import distributions, ks_distance, summarize
from .registry import DATASETS, REAL800, default_data_dir, get_info
from .sim import GENERATORS, generator_spec

app = typer.Typer(no_args_is_help=True, add_completion=False)

NameArg = Annotated[str, typer.Argument(help=f"dataset: {', '.join(DATASETS)}")]
DataDirOpt = Annotated[Optional[Path], typer.Option("--data-dir", help="dataset root (default $SPECK_MTT_DATA or ./data)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print a machine-readable summary to stdout")]

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


@app.command("info")
def info_cmd(
    name: NameArg,
    data_dir: DataDirOpt = None,
    json_out: JsonOpt = False,
    stats_samples: Annotated[Optional[int], typer.Option(min=2, help="recordings per set to measure statistics on "
                                                         "(default: nmnist-sim 200, nmnist-real800 all)")] = None,
    check: Annotated[bool, typer.Option("--check", help="exit 1 when nmnist-sim's statistics drift from "
                                        f"{REAL800}'s (a KS distance over {MAX_KS})")] = False,
) -> None:
    """Counts per split, sensor, classes, recipe T and files of a dataset; statistics of nmnist-sim
    (beside nmnist-real800's, with KS distances) and of nmnist-real800."""
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
        n = stats_samples or 200
        summary["statistics"] = compare_to_real(dataset_distributions(name, data_dir, n),
                                                dataset_distributions(REAL800, data_dir, n))
    if info.eval_only:
        summary["per_class"] = _per_class(name, data_dir)
        real = dataset_distributions(name, data_dir, stats_samples)
        summary["statistics"] = {"n_samples": len(real["events"]), "real": summarize(real)}
    failed = [k for k, ok in summary.get("statistics", {}).get("checks", {}).items() if not ok]
    if json_out:
        typer.echo(dumps_json(summary))
    else:
        _print_info(summary, info)
    if check and failed:
        typer.echo(f"error: nmnist-sim drifted from {REAL800} in: {', '.join(failed)} (KS > {MAX_KS})", err=True)
        raise typer.Exit(1)


def _print_info(summary: dict, info) -> None:
    name, counts = summary["name"], summary["counts"]
    typer.echo(f"{name}: {info.description}")
    typer.echo(f"  sensor {info.sensor_size}, {info.n_classes} classes, recipe T={info.default_frames}")
    typer.echo(f"  files: {summary['layout']}")
    if counts is None:
        typer.echo(f"  not present; offline stand-in: {info.stand_in or 'none'}")
    elif info.eval_only:
        typer.echo(f"  {counts['test']} recordings, evaluation only; per class: "
                   + ", ".join(f"{c}: {n}" for c, n in summary["per_class"].items()))
    else:
        typer.echo(f"  train {counts['train']}, test {counts['test']} recordings")
    st = summary.get("statistics")
    if st and "simulated" in st:
        typer.echo(f"  statistics (mean +- std) of {st['n_samples']} simulated and {st['n_real']} {REAL800} "
                   "recordings, two-sample KS distance:")
        for key, real in st["real"].items():
            sim = st["simulated"][key]
            typer.echo(f"    {key:24s} sim {sim['mean']:9.3f} +- {sim['std']:8.3f}   real {real['mean']:9.3f} +- "
                       f"{real['std']:8.3f}   KS {st['ks'][key]:.3f} {'ok' if st['checks'][key] else 'FAIL'}")
    elif st:
        typer.echo(f"  statistics over {st['n_samples']} recordings (mean +- std):")
        for key, real in st["real"].items():
            typer.echo(f"    {key:24s} {real['mean']:9.3f} +- {real['std']:8.3f}")


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
    for split in ("test",) if info.eval_only else ("train", "test"):
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
