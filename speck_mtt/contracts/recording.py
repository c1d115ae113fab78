"""Spike-count recordings (.npz) shared by the simulator, the devkit and `speck-mtt measure --compare`.

A recording holds, per sample, the spikes per channel of the compared layer: the output layer
for IF voting; for membrane voting the last spiking layer (the one feeding the readout), since
a membrane readout never spikes. Arrays: counts (N, C) int64, labels (N,) int64 (-1 unknown),
sample_ids (N,) int64 (index into the dataset split, so recordings of different runs align),
optional predictions (N,) int64; meta: a JSON string (backend, dataset, split, layer, ...).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SpeckMttError
from ..files import atomic_write
from .sd import SpikeDifference, spike_difference

FORMAT = "speck-mtt-recording"


@dataclass
class Recording:
    counts: np.ndarray
    labels: np.ndarray
    sample_ids: np.ndarray
    predictions: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.counts = np.asarray(self.counts, np.int64)
        self.labels = np.asarray(self.labels, np.int64)
        self.sample_ids = np.asarray(self.sample_ids, np.int64)
        n = len(self.counts)
        if self.counts.ndim != 2 or len(self.labels) != n or len(self.sample_ids) != n:
            raise SpeckMttError(f"recording: counts must be (N, C) with N labels and N sample ids, got counts "
                                f"{self.counts.shape}, {len(self.labels)} labels, {len(self.sample_ids)} ids")
        if self.predictions is not None:
            self.predictions = np.asarray(self.predictions, np.int64)

    def predicted(self) -> np.ndarray:
        """The class per sample: the recorded predictions, else the most active output."""
        return self.predictions if self.predictions is not None else self.counts.argmax(1)


def save_recording(rec: Recording, path: str | Path) -> Path:
    """Write rec atomically as .npz (the suffix is added when missing)."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    arrays = {"counts": rec.counts, "labels": rec.labels, "sample_ids": rec.sample_ids,
              "meta": np.array(json.dumps({"format": FORMAT, **rec.meta}))}
    if rec.predictions is not None:
        arrays["predictions"] = rec.predictions
    atomic_write(path, lambda fh: np.savez(fh, **arrays))
    return path


def load_recording(path: str | Path) -> Recording:
    """Read a recording; a missing or foreign file is a one-line error naming what it is."""
    path = Path(path)
    fix = "pass a .npz written by `speck-mtt measure --record`"
    if not path.is_file():
        raise SpeckMttError(f"{path}: no such recording; {fix}")
    if not zipfile.is_zipfile(path):
        raise SpeckMttError(f"{path}: not a speck-mtt recording (not an .npz archive); {fix}")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("counts", "labels", "sample_ids") if k not in z.files]
            if missing:
                raise SpeckMttError(f"{path}: not a speck-mtt recording (an .npz without {', '.join(missing)}); {fix}")
            meta = json.loads(str(z["meta"])) if "meta" in z else {}
            rec = Recording(z["counts"], z["labels"], z["sample_ids"],
                            z["predictions"] if "predictions" in z else None, meta)
    except SpeckMttError as exc:
        raise SpeckMttError(str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}") from None
    except Exception as exc:  # zip/npz/json errors of many kinds
        why = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        raise SpeckMttError(f"{path}: damaged speck-mtt recording ({why}); {fix}") from None
    return rec


def compare_recordings(rec: Recording, ref: Recording) -> tuple[SpikeDifference, int]:
    """SD of rec against ref on the samples both hold (matched by sample id); also the count."""
    common, ia, ib = np.intersect1d(rec.sample_ids, ref.sample_ids, return_indices=True)
    if len(common) == 0:
        raise SpeckMttError("the recordings share no sample id; record the same dataset split")
    if rec.counts.shape[1] != ref.counts.shape[1]:
        raise SpeckMttError(f"recordings count {rec.counts.shape[1]} and {ref.counts.shape[1]} channels; "
                            "they come from different layers or networks")
    return spike_difference(rec.counts[ia], ref.counts[ib]), len(common)
