"""Chip recordings: written sample by sample (atomically), resumable, readable without hardware.

The file is the shared recording format of speck_mtt.contracts.recording (.npz with counts
(N, C), labels, sample_ids, predictions, meta JSON), so `speck-mtt measure --compare` and
eventsim.recording.load_recording read a chip run like a simulator run, and SD chip-vs-sim or
chip-vs-chip is contracts.sd.spike_difference on the matched counts. counts follow that format's
convention: spikes per channel of the last spiking layer (the output layer for IF voting, the
layer feeding the readout for membrane voting). A chip recording adds per-sample arrays named
"x_<name>" (e.g. x_output_counts, x_membranes, x_wall_ms, x_first_out_us, x_n_input) and,
optionally, the raw output spikes of every sample (raw_events, OUTPUT_SPIKE rows, with
raw_offsets (N+1,)).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SpeckMttError
from ..contracts.recording import FORMAT, Recording, load_recording
from ..files import atomic_write
from .chip_events import OUTPUT_SPIKE, remaining

# meta keys that must agree for a resumed run to continue an existing file
IDENTITY_KEYS = ("backend", "dataset", "split", "layer", "model_hash", "readout")


@dataclass
class ChipRecording(Recording):
    """A Recording plus per-sample devkit measurements and (optionally) the raw output spikes."""

    extras: dict[str, np.ndarray] = field(default_factory=dict)
    raw_events: np.ndarray | None = None  # OUTPUT_SPIKE rows of all samples, concatenated
    raw_offsets: np.ndarray | None = None  # (N+1,) sample i is raw_events[off[i]:off[i+1]]

    def raw(self, i: int) -> np.ndarray:
        """Raw output spikes of the i-th recorded sample (row i, not sample id i)."""
        if self.raw_events is None or self.raw_offsets is None:
            raise SpeckMttError("this recording has no raw events (record with raw events on)")
        return self.raw_events[self.raw_offsets[i]:self.raw_offsets[i + 1]]


def file_hash(path: Path) -> str:
    """Short sha256 of a file: ties a recording to the exact artifact it ran."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _npz(path: Path) -> Path:
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def save_chip_recording(rec: ChipRecording, path: Path) -> Path:
    """Write rec atomically (a crash mid-write leaves the previous file intact)."""
    path = _npz(path)
    arrays: dict[str, np.ndarray] = {"counts": rec.counts, "labels": rec.labels, "sample_ids": rec.sample_ids,
                                     "meta": np.array(json.dumps({**rec.meta, "format": FORMAT}))}
    if rec.predictions is not None:
        arrays["predictions"] = rec.predictions
    for name, values in rec.extras.items():
        arrays[f"x_{name}"] = np.asarray(values)
    if rec.raw_events is not None:
        arrays["raw_events"] = rec.raw_events
        arrays["raw_offsets"] = rec.raw_offsets
    atomic_write(path, lambda fh: np.savez(fh, **arrays))
    return path


def load_chip_recording(path: Path) -> ChipRecording:
    """Read a recording written by the devkit (or the simulator: extras are then empty)."""
    path = _npz(path)
    base = load_recording(path)
    extras: dict[str, np.ndarray] = {}
    raw = offsets = None
    with np.load(path, allow_pickle=False) as z:
        for key in z.files:
            if key.startswith("x_"):
                extras[key[2:]] = z[key]
        if "raw_events" in z.files:
            raw, offsets = z["raw_events"], z["raw_offsets"]
    return ChipRecording(base.counts, base.labels, base.sample_ids, base.predictions, base.meta, extras, raw, offsets)


class ChipRecorder:
    """Accumulates samples and rewrites the file every `flush_every` samples and on close.

    resume=True continues an existing file whose identity meta matches (same artifact hash,
    dataset, split, readout); an existing file without resume is refused so no run is lost.
    """

    def __init__(self, path: Path, meta: dict[str, Any], *, resume: bool = False, raw: bool = False,
                 flush_every: int = 20):
        self.path = _npz(path)
        self.meta = dict(meta)
        self.raw = raw
        self.flush_every = max(1, int(flush_every))
        self._rows: list[dict[str, Any]] = []
        self._unsaved = 0
        if self.path.exists():
            if not resume:
                raise SpeckMttError(f"{self.path} already exists; pass --resume to continue it or choose another "
                                    "--record path")
            old = load_chip_recording(self.path)
            check_resumable(old.meta, self.meta, self.path)
            self.meta = {**old.meta, **self.meta}
            self.raw = raw or old.raw_events is not None
            for i in range(len(old.counts)):
                self._rows.append({
                    "sample_id": int(old.sample_ids[i]), "label": int(old.labels[i]), "counts": old.counts[i],
                    "prediction": int(old.predictions[i]) if old.predictions is not None else -1,
                    "extras": {k: v[i] for k, v in old.extras.items()},
                    "raw": old.raw(i) if old.raw_events is not None else np.zeros(0, OUTPUT_SPIKE)})

    @property
    def done(self) -> list[int]:
        return [row["sample_id"] for row in self._rows]

    def todo(self, sample_ids: list[int]) -> list[int]:
        return remaining(sample_ids, self.done)

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, sample_id: int, label: int, counts: np.ndarray, prediction: int,
            extras: dict[str, Any] | None = None, raw: np.ndarray | None = None) -> None:
        if self._rows and set((extras or {}).keys()) != set(self._rows[0]["extras"].keys()):
            raise SpeckMttError(f"{self.path}: sample {sample_id} has measurements {sorted(extras or {})}, "
                                f"the file has {sorted(self._rows[0]['extras'])}")
        self._rows.append({"sample_id": int(sample_id), "label": int(label), "counts": np.asarray(counts, np.int64),
                           "prediction": int(prediction), "extras": dict(extras or {}),
                           "raw": np.asarray(raw, OUTPUT_SPIKE) if raw is not None else np.zeros(0, OUTPUT_SPIKE)})
        self._unsaved += 1
        if self._unsaved >= self.flush_every:
            self.flush()

    def recording(self) -> ChipRecording:
        rows = self._rows
        n_channels = len(rows[0]["counts"]) if rows else 0
        counts = np.stack([r["counts"] for r in rows]) if rows else np.zeros((0, n_channels), np.int64)
        keys = list(rows[0]["extras"]) if rows else []
        extras = {k: np.stack([np.asarray(r["extras"][k]) for r in rows]) for k in keys}
        raw = offsets = None
        if self.raw:
            lengths = [len(r["raw"]) for r in rows]
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            raw = np.concatenate([r["raw"] for r in rows]) if rows else np.zeros(0, OUTPUT_SPIKE)
        return ChipRecording(counts, [r["label"] for r in rows], [r["sample_id"] for r in rows],
                             np.asarray([r["prediction"] for r in rows], np.int64), dict(self.meta), extras, raw,
                             offsets)

    def flush(self) -> Path:
        path = save_chip_recording(self.recording(), self.path)
        self._unsaved = 0
        return path


def check_resumable(old: dict[str, Any], new: dict[str, Any], path: Path) -> None:
    """A resumed run must be the same measurement: same artifact, dataset, split and readout."""
    for key in IDENTITY_KEYS:
        if key in new and old.get(key) != new[key]:
            raise SpeckMttError(f"{path}: cannot resume, it was recorded with {key}={old.get(key)!r} but this run has "
                                f"{key}={new[key]!r}; record to another path")
