"""Options several commands share, defined once so their name, type and help agree."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Dataset root (default $SPECK_MTT_DATA "
                                                                    "or ./data).")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
DatasetOfCheckpoint = Annotated[Optional[str], typer.Option("--dataset", help="Dataset (default: the checkpoint's).")]
Samples = Annotated[Optional[int], typer.Option("--samples", min=1, help="Test samples (default: all).")]
