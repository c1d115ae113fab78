"""A progress bar with a remaining-time estimate for long simulator runs (VGGSNN: seconds per
recording). Shown on stderr when it is a terminal or when asked for, so logs and tests stay clean."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

CHUNK_PER_WORKER = 4  # samples per thread between two updates of the bar (simulate_many's chunk)


def wanted(flag: bool | None) -> bool:
    """True/False as asked (--progress, the Python API); None: when stderr is a terminal."""
    return sys.stderr.isatty() if flag is None else flag


@contextmanager
def sample_progress(total: int, enabled: bool, what: str = "simulating") -> Iterator[Callable[[int], None] | None]:
    """Yields simulate_many's `progress(n_done)` callback driving a rich bar, or None when disabled."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("left"),
                  TimeRemainingColumn(), console=Console(stderr=True, force_terminal=True)) as bar:
        task = bar.add_task(what, total=total)
        yield lambda done: bar.update(task, completed=done)
