"""`speck-mtt export`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..api import export_nir
from ..choices import ExportFormat
from .options import Json


def export_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Bias-free checkpoint (what `speck-mtt deploy` takes).")],
    out: Annotated[Path, typer.Option("--out", help="The file to write (FILE.nir).")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="nir: the Neuromorphic Intermediate Representation "
                                                               "(HDF5, read by sinabs, snnTorch, Norse, Rockpool, "
                                                               "Lava).")] = ExportFormat.nir,
    json_out: Json = False,
) -> None:
    """Export a checkpoint's Speck-ready network for other SNN tools (thresholds, floors, head kept)."""
    result = export_nir(checkpoint, out)
    meta = result.data
    if json_out:
        typer.echo(json.dumps(meta, indent=2))
        return
    typer.echo(f"{meta['arch']} -> {out} (NIR, head {meta['head']}, {meta['n_classes']} classes); "
               f"deploy it with `speck-mtt deploy {out} --target speck2e --out DIR`")
