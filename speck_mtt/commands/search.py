"""`speck-mtt search`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..choices import Energy, Rates
from .options import DatasetOfCheckpoint, DataDir, Json, Samples, value


def search_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint written by `speck-mtt train` (an MTT model).")],
    dataset: DatasetOfCheckpoint = None,
    data_dir: DataDir = None,
    t_min: Annotated[int, typer.Option("--t-min", min=1, help="Smallest T of a stage.")] = 1,
    t_max: Annotated[Optional[int], typer.Option("--t-max", min=1, help="Largest T of a stage and frames of the "
                                                                        "data (default: the checkpoint's).")] = None,
    configs: Annotated[int, typer.Option("--configs", min=2, help="Configurations sampled for the fit "
                                                                  "(paper: 18).")] = 18,
    energy_fraction: Annotated[float, typer.Option("--energy-fraction", min=0.0, help="Energy bound as a fraction "
                                                                                      "of uniform T_max.")] = 0.5,
    energy_bound: Annotated[Optional[float], typer.Option("--energy-bound", min=0.0, help="Absolute energy bound "
                                                                                          "(overrides the fraction).")]
    = None,
    energy_kind: Annotated[Energy, typer.Option("--energy", help="What the stage rates count.")] = Energy.spikes,
    rates_from: Annotated[Rates, typer.Option("--rates", help="fit: stage rates fitted to the sampled "
                                                              "configurations' energies; uniform: measured at "
                                                              "uniform T_max (the paper's).")] = Rates.fit,
    samples: Samples = None,
    keep_input_stage: Annotated[bool, typer.Option("--keep-input-stage/--search-input-stage",
                                                   help="Keep stage 1 at the input frames (T_max), as MTT "
                                                        "training does for event data, or search it too.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sampled configurations.")] = 0,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write search.json and search.md here.")] = None,
    json_out: Json = False,
) -> None:
    """Temporal-configuration search (paper A.8/A.9): fit acc ~ sum_i w_i sqrt(T_i) + b on sampled
    stage-wise T, then the best configuration within an energy bound."""
    from ..analysis.config_search import render_search, search_configuration, write_search
    from ..analysis.probe import checkpoint_and_test_frames
    from ..files import dumps_json

    model, data, t, _ = checkpoint_and_test_frames(checkpoint, value(dataset), data_dir, t_max, samples)
    result = search_configuration(model, data, t_min, t, configs, energy_bound, energy_fraction, energy_kind.value,
                                  rates_from.value, first_stage=t if keep_input_stage else None, seed=seed)
    if out is not None:
        write_search(result, Path(out))
    typer.echo(dumps_json(result) if json_out else render_search(result))
