"""Atomic file writes and safe checkpoint loading: an interrupted run never leaves a half file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from collections.abc import Callable
from typing import Any, BinaryIO

import torch

from .errors import SpeckMttError


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None], fsync: bool = True) -> None:
    """Write through a temporary file and os.replace: a killed run never leaves a half file.

    fsync=False for many small regenerable files, where atomicity alone is what matters.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_torch(obj: Any, path: Path) -> None:
    """torch.save through a temporary file and os.replace (atomic on POSIX)."""
    atomic_write(path, lambda fh: torch.save(obj, fh))


def load_torch(path: Path) -> Any:
    """torch.load with weights_only=True; a missing or unreadable file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise SpeckMttError(f"{path}: no such checkpoint file; pass the path of a .pt written by speck-mtt")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt/foreign files
        raise SpeckMttError(f"{path}: cannot be read as a speck-mtt checkpoint ({type(exc).__name__}: {exc})".splitlines()[0]) from exc


def save_json(obj: Any, path: Path) -> None:
    """Write JSON atomically (metrics and reports are read while runs are going on)."""
    data = (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode()
    atomic_write(path, lambda fh: fh.write(data))


def save_text(text: str, path: Path) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode()))
