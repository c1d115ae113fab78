"""`speck-mtt devices`."""

from __future__ import annotations

import typer

from ..chip.devkit import list_devkits


def devices_cmd() -> None:
    """List the Speck2e devkits connected now (exit 2 with one line when none is, or samna is missing)."""
    for kit in list_devkits():
        typer.echo(f"{kit['id']}\tserial {kit['serial']}\tusb bus {kit['bus']} address {kit['address']}")
