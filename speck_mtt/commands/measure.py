"""`speck-mtt measure`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..api import measure_deployed
from ..choices import Backend, Dataset
from .options import DataDir, Json, value


def _pct(value: float | None) -> str:
    return "undefined (reference has no spike)" if value is None else f"{value:.2%}"


def measure_cmd(
    deploy_dir: Annotated[Path, typer.Argument(help="Directory written by `speck-mtt deploy` (artifact.pt, model.pt).")],
    backend: Annotated[Backend, typer.Option("--backend", help="sim: bundled event-driven simulator; "
                                                               "speck2e: a connected devkit (real samna).")] = Backend.sim,
    dataset: Annotated[Optional[Dataset], typer.Option("--dataset", help="Dataset (default: the architecture's; a real "
                                                                     "one without files falls back to its -sim).")] = None,
    data_dir: DataDir = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Only the first N test samples.")] = None,
    t: Annotated[Optional[list[int]], typer.Option("--t", min=1, help="Compare with the time-stepped torch model "
                                                                      "at this T (repeatable; default for an "
                                                                      "evaluation set such as nmnist-real800: "
                                                                      "the model's T_max).")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, help="Simulator threads "
                                                                            "(default: all cores).")] = None,
    float_mode: Annotated[bool, typer.Option("--float", help="Simulate the undiscretized float layers.")] = False,
    record: Annotated[Optional[Path], typer.Option("--record", help="Save this run's spike counts (.npz) "
                                                                    "for later --compare.")] = None,
    compare: Annotated[Optional[list[Path]], typer.Option("--compare", help="SD against a recording "
                                                                            "(repeatable).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Result JSON (default DEPLOY_DIR/"
                                                              "measure-<backend>.json; for an evaluation set "
                                                              "measure-<backend>-<dataset>.json).")] = None,
    search_config: Annotated[bool, typer.Option("--search-config", help="Also search the stage-wise T of "
                                                "DEPLOY_DIR/model.pt under an energy bound (paper A.8/A.9; "
                                                "`speck-mtt search` has every option); writes search.json/.md.")]
    = False,
    floors: Annotated[Optional[list[float]], typer.Option("--floor", max=0, help="Also simulate with every spiking "
                                                          "layer's lower threshold at this many thresholds, e.g. "
                                                          "--floor -1 --floor -4 (repeatable; a sweep).")] = None,
    progress: Annotated[bool, typer.Option("--progress", help="Show the simulator's progress and remaining time "
                                           "on stderr (default: only when stderr is a terminal).")] = False,
    json_out: Json = False,
) -> None:
    """Accuracy, spike difference (vs torch at T, vs recordings), spikes, SynOps and samples/s."""
    from ..analysis.config_search import render_search
    from ..files import dumps_json

    result = measure_deployed(deploy_dir, backend=backend.value, dataset=value(dataset), data_dir=data_dir,
                              limit=limit, t=t, workers=workers, float_mode=float_mode, record=record,
                              compare=compare, out=out, floors=floors, search_config=search_config,
                              progress=True if progress else None)
    if result.rank != 0:  # under torchrun rank 0 answers
        return
    report = result.data
    if json_out:
        typer.echo(dumps_json(report))
        return
    floor = f", floor {report['floor']:g}" if report.get("floor") is not None else ""
    typer.echo(f"{report['arch']} on {report['dataset']} ({report['backend']}{', float' if float_mode else ''}{floor}): "
               f"accuracy {report['accuracy']:.2%} over {report['n_samples']} samples")
    if "synops_per_sample" in report:
        typer.echo(f"  per sample: {report['input_events_per_sample']:.0f} input events, "
                   f"{report['spikes_per_sample']:.0f} spikes, {report['synops_per_sample']:.0f} SynOps")
    typer.echo(f"  {report['samples_per_s']:.1f} samples/s, wall {report['wall_s']:.2f} s")
    for row in report["torch"]:
        typer.echo(f"  vs torch T={row['t']}: SD {_pct(row['sd'])} (per-sample mean {_pct(row['sd_per_sample_mean'])}), "
                   f"torch accuracy {row['accuracy']:.2%}")
        for layer in row.get("layers", []):
            sim = report["layers"][layer["layer"]]
            typer.echo(f"    layer {layer['layer']}: spikes/sample torch {layer['torch_spikes_per_sample']:.1f}, "
                       f"sim {layer['sim_spikes_per_sample']:.1f}, SD {_pct(layer['sd'])}; per sample in the sim: "
                       f"{sim['floor_hits_per_sample']:.1f} floor hits, {sim['held_spikes_per_sample']:.1f} held "
                       f"spikes, {sim['top_saturations_per_sample']:.1f} saturations at the register top")
    for row in report.get("floors", []):
        sds = ", ".join(f"SD vs T={r['t']} {_pct(r['sd'])}" for r in row["torch"])
        typer.echo(f"  floor {row['floor']:g}: accuracy {row['accuracy']:.2%}, "
                   f"{row['floor_hits_per_sample']:.1f} floor hits/sample" + (f", {sds}" if sds else ""))
    for row in report["compare"]:
        typer.echo(f"  vs {row['reference']}: SD {_pct(row['sd'])} on {row['n_common']} common samples")
    typer.echo(f"  wrote {report['written']}" + (f" and {report['record']}" if "record" in report else ""))
    if "search" in report:
        typer.echo(render_search(report["search"]) + f"  wrote {deploy_dir / 'search.json'}")
    sys.stdout.flush()
