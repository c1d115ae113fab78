"""N-MNIST 40-bit event records (docs/design.md#event-conventions): the writer lives here, decoding is tonic's own reader.

Record of 5 bytes per event: x, y, then polarity in bit 7 of byte 2 with timestamp bits 22-16
in its low 7 bits, then timestamp bits 15-0 in bytes 3-4 (big-endian), t in microseconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tonic

from ...errors import DataError
from .events import check_events
from ...files import atomic_write

BYTES_PER_EVENT = 5
MAX_T_US = 2**23 - 1  # 23 timestamp bits; longer recordings would need overflow records
OVERFLOW_Y = 240  # y value tonic's reader treats as a timestamp-overflow record
NMNIST_SENSOR = (34, 34, 2)
# Time running backwards is refused, never sorted: with 23-bit timestamps and overflow records a
# drop is a lost overflow record or two recordings glued together, and sorting would interleave
# them (docs/design.md#event-conventions).
TIME_SORTABLE = False


def encode_nmnist(events: np.ndarray) -> bytes:
    """Encode an x/y/p/t structured array (t in us) as N-MNIST 40-bit records."""
    if len(events) == 0:
        raise DataError("cannot write an empty recording: N-MNIST files hold at least one event")
    x, y = events["x"].astype(np.int64), events["y"].astype(np.int64)
    p, t = events["p"].astype(np.int64), events["t"].astype(np.int64)
    if x.min() < 0 or x.max() > 255 or y.min() < 0 or y.max() > 255 or (y == OVERFLOW_Y).any():
        raise DataError("N-MNIST records hold x, y in 0..255 (y=240 is reserved for overflow records)")
    if ((p != 0) & (p != 1)).any():
        raise DataError("N-MNIST records hold polarity 0 or 1 only")
    if t.min() < 0 or t.max() > MAX_T_US:
        raise DataError(f"N-MNIST records hold timestamps 0..{MAX_T_US} us, got {t.min()}..{t.max()}")
    raw = np.empty((len(t), BYTES_PER_EVENT), dtype=np.uint8)
    raw[:, 0] = x
    raw[:, 1] = y
    raw[:, 2] = (p << 7) | ((t >> 16) & 0x7F)
    raw[:, 3] = (t >> 8) & 0xFF
    raw[:, 4] = t & 0xFF
    return raw.tobytes()


def write_nmnist_bin(path: str | Path, events: np.ndarray) -> None:
    """Write a .bin atomically: a killed run never leaves half a file."""
    data = encode_nmnist(events)
    atomic_write(path, lambda fh: fh.write(data), fsync=False)


def check_nmnist_file(path: str | Path) -> None:
    """Reject files tonic's reader would mis-decode silently (missing, empty, truncated)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(f"{path}: cannot read N-MNIST file ({exc.strerror})") from None
    if size == 0:
        raise DataError(f"{path}: empty recording (0 bytes); delete or replace the file")
    if size % BYTES_PER_EVENT:
        raise DataError(
            f"{path}: truncated or corrupt N-MNIST file ({size} bytes is not a multiple of"
            f" {BYTES_PER_EVENT}); delete or replace the file"
        )


def read_nmnist_bin(path: str | Path, sensor_size: tuple[int, int, int] = NMNIST_SENSOR) -> np.ndarray:
    """Decode one .bin with tonic.io.read_mnist_file and validate it (EVENT_DTYPE, sorted by t)."""
    check_nmnist_file(path)
    events = tonic.io.read_mnist_file(str(path), dtype=tonic.datasets.NMNIST.dtype)
    return check_events(events, sensor_size, path, sortable=TIME_SORTABLE)
