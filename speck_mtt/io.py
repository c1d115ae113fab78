"""Atomic file writes and safe checkpoint loading: an interrupted run never leaves a half file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import SpeckMttError


def _atomic_replace(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_torch(obj: Any, path: Path) -> None:
    """torch.save through a temporary file and os.replace (atomic on POSIX)."""
    _atomic_replace(path, lambda fh: torch.save(obj, fh))


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
    _atomic_replace(path, lambda fh: fh.write(data))


def save_text(text: str, path: Path) -> None:
    _atomic_replace(path, lambda fh: fh.write(text.encode()))
