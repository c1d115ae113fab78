"""`speck-mtt devices`."""

from __future__ import annotations

import typer

from .options import Json


def devices_cmd(json_out: Json = False) -> None:
    """List the Speck2e devkits connected now (exit 2 with one line when none is, or samna is missing)."""
    from ..chip.devkit import list_devkits
    from ..files import dumps_json

    kits = list_devkits()
    if json_out:
        typer.echo(dumps_json(kits))
        return
    for kit in kits:
        typer.echo(f"{kit['id']}\tserial {kit['serial']}\tusb bus {kit['bus']} address {kit['address']}")
