"""`speck-mtt data info|prepare`: what a dataset holds and where, and one-off generation/caching."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..choices import Dataset
from .options import DataDir, Json

app = typer.Typer(no_args_is_help=True, add_completion=False)

NameArg = Annotated[Dataset, typer.Argument(help="The dataset.")]


@app.command("info")
def info_cmd(
    name: NameArg,
    data_dir: DataDir = None,
    json_out: Json = False,
    stats_samples: Annotated[Optional[int], typer.Option(min=2, help="recordings per set to measure statistics on "
                                                         "(default: nmnist-sim 200, nmnist-real800 all)")] = None,
    check: Annotated[bool, typer.Option("--check", help="exit 1 when a statistic of nmnist-sim drifts from "
                                        "nmnist-real800's (its KS check says FAIL)")] = False,
) -> None:
    """Counts per split, sensor, classes, recipe T and files of a dataset; statistics of nmnist-sim
    (beside nmnist-real800's, with KS distances) and of nmnist-real800."""
    from ..data.inventory import MAX_KS, dataset_summary
    from ..data.registry import REAL800, get_info
    from ..files import dumps_json

    info = get_info(name.value)
    summary = dataset_summary(name.value, data_dir, stats_samples)
    failed = [k for k, ok in summary.get("statistics", {}).get("checks", {}).items() if not ok]
    if json_out:
        typer.echo(dumps_json(summary))
    else:
        _print_info(summary, info)
    if check and failed:
        typer.echo(f"error: nmnist-sim drifted from {REAL800} in: {', '.join(failed)} (KS > {MAX_KS})", err=True)
        raise typer.Exit(1)


def _print_info(summary: dict, info) -> None:
    from ..data.registry import REAL800

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
    data_dir: DataDir = None,
    frames: Annotated[Optional[int], typer.Option(help="T of the frame cache (default: the recipe's T)")] = None,
    limit: Annotated[Optional[int], typer.Option(help="only this many recordings per split (quick runs)")] = None,
    workers: Annotated[int, typer.Option(min=1, help="processes generating a built-in set's recordings")] = 1,
    json_out: Json = False,
) -> None:
    """Generate (built-in sets) or verify (real sets: every file is decoded) and build the frame cache."""
    from ..data.inventory import prepare
    from ..files import dumps_json

    summary = prepare(name.value, data_dir, frames, limit, workers)
    files, n_frames, splits = summary["files"], summary["n_frames"], summary["splits"]
    if json_out:
        typer.echo(dumps_json(summary))
        return
    typer.echo(f"{name.value}: recordings under {files}")
    for split, s in splits.items():
        typer.echo(f"  {split}: {s['samples']} samples, frames T={n_frames} cached in {s['frame_cache']} ({s['seconds']} s)")
