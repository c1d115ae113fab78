"""Options several commands share, defined once so their name, type and help agree. Like every
command module, this one imports no heavy library: `speck-mtt --help` stays fast."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..choices import Dataset

DataDir = Annotated[Optional[Path], typer.Option("--data-dir", envvar="SPECK_MTT_DATA",
                                                 help="Dataset root (default ./data).")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
DatasetOfCheckpoint = Annotated[Optional[Dataset], typer.Option("--dataset", help="Dataset (default: the checkpoint's).")]
Samples = Annotated[Optional[int], typer.Option("--samples", min=1, help="Test samples (default: all).")]


def value(choice: Enum | None) -> str | None:
    """The plain string of a choice (the library takes strings), None kept."""
    return None if choice is None else choice.value
