"""A progress bar with a remaining-time estimate for long simulator runs (VGGSNN: seconds per
recording). Shown on stderr when it is a terminal or when asked for, so logs and tests stay clean;
into a log (stderr not a terminal) it writes one plain line a minute instead of a redrawn bar."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

CHUNK_PER_WORKER = 4  # samples per thread between two updates of the bar (simulate_many's chunk)
LINE_EVERY_S = 60.0  # a log's progress line at most this often (and at the end)


def wanted(flag: bool | None) -> bool:
    """True/False as asked (--progress, the Python API); None: when stderr is a terminal."""
    return sys.stderr.isatty() if flag is None else flag


@contextmanager
def sample_progress(total: int, enabled: bool, what: str = "simulating") -> Iterator[Callable[[int], None] | None]:
    """Yields simulate_many's `progress(n_done)` callback driving a rich bar, or None when disabled."""
    if not enabled:
        yield None
        return
    if not sys.stderr.isatty():
        yield _lines(total, what)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("left"),
                  TimeRemainingColumn(), console=Console(stderr=True, force_terminal=True)) as bar:
        task = bar.add_task(what, total=total)
        yield lambda done: bar.update(task, completed=done)


def _lines(total: int, what: str) -> Callable[[int], None]:
    """The callback for a log: 'what k/total, elapsed, about m min left' at most every LINE_EVERY_S."""
    start = last = time.perf_counter()

    def tick(done: int) -> None:
        nonlocal last
        now = time.perf_counter()
        if done and (now - last >= LINE_EVERY_S or done >= total):
            last = now
            left = (now - start) / done * (total - done)
            print(f"{what} {done}/{total}, {now - start:.0f} s, about {left / 60:.1f} min left", file=sys.stderr,
                  flush=True)
    return tick
