"""The packaged MNIST t10k digits (IDX format, see assets/ATTRIBUTION.md), read without torchvision."""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

import numpy as np

from ...errors import DataError

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Decode a gzipped IDX file (big-endian header: magic, dims) into a uint8 array."""
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    header = np.frombuffer(raw[:4], dtype=">u4")[0]
    if header != magic:
        raise DataError(f"{path}: not an IDX file with magic {magic} (got {header})")
    ndim = magic & 0xFF
    dims = np.frombuffer(raw[4 : 4 + 4 * ndim], dtype=">u4").astype(int)
    data = np.frombuffer(raw[4 + 4 * ndim :], dtype=np.uint8)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: truncated IDX file ({data.size} values for shape {tuple(dims)})")
    return data.reshape(dims)


@lru_cache(maxsize=1)
def load_t10k() -> tuple[np.ndarray, np.ndarray]:
    """(images (10000, 28, 28) uint8, labels (10000,) uint8) of the MNIST test set."""
    images = read_idx(ASSETS / "t10k-images-idx3-ubyte.gz", 2051)
    labels = read_idx(ASSETS / "t10k-labels-idx1-ubyte.gz", 2049)
    return images, labels


def real_sample_path() -> Path:
    """The one real N-MNIST recording shipped as the decoder's golden file and statistics reference."""
    return ASSETS / "sample_nmnist.bin"
