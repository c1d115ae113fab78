"""Chip recordings: incremental atomic writes, the shared reader, resume rules, SD chip-vs-chip."""

import numpy as np
import pytest

from speck_mtt.errors import SpeckMttError
from speck_mtt.contracts.sd import spike_difference
from speck_mtt.contracts.recording import compare_recordings, load_recording
from speck_mtt.chip.chip_events import OUTPUT_SPIKE
from speck_mtt.chip.recorder import ChipRecorder, file_hash, load_chip_recording

META = {"backend": "speck2e", "dataset": "nmnist-sim", "split": "test", "layer": 3, "readout": "spikes",
        "model_hash": "abc"}


def _add(rec, i, counts, raw_n=0):
    raw = np.array([(3, j % 3, 0, 0, 10 * j) for j in range(raw_n)], OUTPUT_SPIKE) if raw_n else None
    rec.add(i, i % 3, np.asarray(counts), int(np.argmax(counts)),
            {"wall_ms": 1.5 * i, "output_counts": np.asarray(counts), "first_output_us": i}, raw)


def test_flushes_every_n_samples_and_reads_back(tmp_path):
    path = tmp_path / "chip.npz"
    rec = ChipRecorder(path, META, flush_every=2, raw=True)
    _add(rec, 0, [1, 0, 2], raw_n=3)
    assert not path.exists()
    _add(rec, 1, [0, 4, 0], raw_n=0)
    assert path.exists() and len(load_recording(path).counts) == 2
    _add(rec, 2, [5, 5, 1], raw_n=2)
    assert len(load_recording(path).counts) == 2  # not yet flushed
    rec.flush()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chip.npz"]  # no temporary file left

    base = load_recording(path)  # the simulator's reader reads a chip run
    assert base.counts.tolist() == [[1, 0, 2], [0, 4, 0], [5, 5, 1]]
    assert base.sample_ids.tolist() == [0, 1, 2] and base.labels.tolist() == [0, 1, 2]
    assert base.predictions.tolist() == [2, 1, 0] and base.meta["model_hash"] == "abc"
    chip = load_chip_recording(path)
    assert chip.extras["wall_ms"].tolist() == [0.0, 1.5, 3.0]
    assert chip.extras["output_counts"].shape == (3, 3)
    assert len(chip.raw(0)) == 3 and len(chip.raw(1)) == 0 and chip.raw(2)["timestamp"].tolist() == [0, 10]


def test_existing_file_needs_resume_and_matching_identity(tmp_path):
    path = tmp_path / "chip.npz"
    rec = ChipRecorder(path, META, flush_every=1)
    _add(rec, 0, [1, 1, 1])
    with pytest.raises(SpeckMttError, match="--resume"):
        ChipRecorder(path, META)
    with pytest.raises(SpeckMttError, match="model_hash"):
        ChipRecorder(path, {**META, "model_hash": "other"}, resume=True)
    with pytest.raises(SpeckMttError, match="dataset"):
        ChipRecorder(path, {**META, "dataset": "gesture-sim"}, resume=True)


def test_resume_continues_where_it_stopped(tmp_path):
    path = tmp_path / "chip"  # suffix added
    rec = ChipRecorder(path, META, flush_every=1)
    for i in range(3):
        _add(rec, i, [i, 1, 0])
    again = ChipRecorder(path, {**META, "device": "speck2edevkit:0"}, resume=True, flush_every=1)
    assert again.done == [0, 1, 2] and again.todo(list(range(6))) == [3, 4, 5]
    for i in again.todo(list(range(6))):
        _add(again, i, [i, 1, 0])
    out = load_chip_recording(tmp_path / "chip.npz")
    assert out.sample_ids.tolist() == list(range(6)) and out.counts[:, 0].tolist() == list(range(6))
    assert out.extras["first_output_us"].tolist() == list(range(6)) and out.meta["device"] == "speck2edevkit:0"


def test_mismatched_measurements_are_refused(tmp_path):
    rec = ChipRecorder(tmp_path / "c.npz", META)
    _add(rec, 0, [1, 1, 1])
    with pytest.raises(SpeckMttError, match="measurements"):
        rec.add(1, 0, np.array([1, 1, 1]), 0, {"wall_ms": 1.0})


def test_chip_vs_chip_sd_is_the_shared_formula(tmp_path):
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 20, (8, 10)), rng.integers(0, 20, (8, 10))
    for name, counts in (("a", a), ("b", b)):
        rec = ChipRecorder(tmp_path / f"{name}.npz", META)
        for i in range(8):
            rec.add(i, 0, counts[i], int(np.argmax(counts[i])))
        rec.flush()
    sd, n = compare_recordings(load_recording(tmp_path / "a.npz"), load_recording(tmp_path / "b.npz"))
    assert n == 8 and sd == spike_difference(a, b)


def test_file_hash_changes_with_content(tmp_path):
    f = tmp_path / "artifact.pt"
    f.write_bytes(b"one")
    h1 = file_hash(f)
    f.write_bytes(b"two")
    assert len(h1) == 16 and file_hash(f) != h1
