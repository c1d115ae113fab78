"""The one event layout every speck-mtt dataset returns, and the checks a recording must pass."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ...errors import DataError

# x, y, p, t (t in microseconds): the order docs/design.md#event-conventions promises to consumers.
EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("p", "<i1"), ("t", "<i8")])


def make_events(x, y, p, t) -> np.ndarray:
    """Structured EVENT_DTYPE array from four equally long columns."""
    events = np.empty(len(t), dtype=EVENT_DTYPE)
    events["x"], events["y"], events["p"], events["t"] = x, y, p, t
    return events


def check_events(events: np.ndarray, sensor_size: tuple[int, int, int], source: str | Path,
                 sortable: bool = True) -> np.ndarray:
    """Validate any x/y/p/t structured array and return it as EVENT_DTYPE sorted by t (stable).

    Raises DataError naming `source` for an empty recording, events outside the sensor,
    polarities other than 0/1 or negative timestamps. Time running backwards is sorted with a
    one-line warning (once per source) when `sortable` (every event carries its full timestamp),
    else refused naming the first backwards event (docs/design.md#event-conventions).
    """
    if events.dtype.names is None or not {"x", "y", "p", "t"} <= set(events.dtype.names):
        raise DataError(f"{source}: not an event recording (need fields x, y, p, t, got {events.dtype})")
    if len(events) == 0:
        raise DataError(f"{source}: empty recording (no events); delete or replace the file")
    w, h = sensor_size[0], sensor_size[1]
    x, y = events["x"].astype(np.int64), events["y"].astype(np.int64)
    bad = (x < 0) | (x >= w) | (y < 0) | (y >= h)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}: {int(bad.sum())} events outside the {w}x{h} sensor (first: x={x[i]}, y={y[i]});"
            " the file is corrupt or belongs to another dataset"
        )
    p = events["p"].astype(np.int64)
    if ((p != 0) & (p != 1)).any():
        raise DataError(f"{source}: polarity values other than 0/1 ({np.unique(p)[:5].tolist()})")
    t = events["t"].astype(np.int64)
    if t.min() < 0:
        raise DataError(f"{source}: negative timestamp {int(t.min())} us")
    out = make_events(x, y, p, t)
    back = np.flatnonzero(np.diff(t) < 0)
    if len(back):
        i = int(back[0]) + 1
        what = (f"{source}: time runs backwards at event {i} of {len(t)} (t = {t[i]} us after {t[i - 1]} us; "
                f"{len(back)} backward steps)")
        if not sortable:
            raise DataError(f"{what}: a corrupt or concatenated recording; delete or replace the file")
        if str(source) not in _warned:
            _warned.add(str(source))
            print(f"warning: {what}; sorted by time", file=sys.stderr)
        out = out[np.argsort(t, kind="stable")]
    return out


_warned: set[str] = set()  # sources whose sorting was reported (a recording is read once per epoch or cache)
