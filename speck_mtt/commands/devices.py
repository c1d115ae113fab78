"""`speck-mtt devices`."""

from __future__ import annotations

import typer

from ..chip.devkit import CONNECT_HINT, DEVICE_KIND, _on_usb, _usb_key, connected_devkits
from ..errors import DeviceError


def devices_cmd() -> None:
    """List the Speck2e devkits connected now (exit 2 with one line when none is, or samna is missing)."""
    found = connected_devkits()
    if not found:
        raise DeviceError(f"no Speck2e devkit is connected (SynSense devices on USB: {_on_usb()}); {CONNECT_HINT}")
    for i, info in enumerate(found):
        bus, address = _usb_key(info)
        typer.echo(f"{DEVICE_KIND}:{i}\tserial {getattr(info, 'serial_number', '?')}\tusb bus {bus} address {address}")
