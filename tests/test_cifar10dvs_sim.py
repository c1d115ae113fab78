"""cifar10dvs-sim: our .aedat4 writer read back by tonic, the generated stand-in through tonic's
CIFAR10DVS class, its statistics, determinism and the `data info` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tonic

from speck_mtt.data import event_dataset
from speck_mtt.data.datasets import data_fingerprint
from speck_mtt.data.functional.aedat4 import PACKET_EVENTS, write_aedat4
from speck_mtt.data.functional.events import make_events
from speck_mtt.data.functional.mnist_idx import load_t10k
from speck_mtt.data.functional.rcls import RCLSParams, picture_of, simulate_rcls
from speck_mtt.data.sim import CIFAR10DVSSim, ensure_generated
from speck_mtt.data.tonic_sets import CIFAR10DVSFiles
from speck_mtt.errors import DataError

SPECK = str(Path(sys.executable).with_name("speck-mtt"))


def _random_events(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_events(rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n),
                       np.sort(rng.integers(0, 1_300_000, n)))


def test_aedat4_round_trips_through_tonics_reader(tmp_path):
    events = _random_events(PACKET_EVENTS + 1234)  # two packets
    write_aedat4(tmp_path / "CIFAR10DVS" / "cat" / "0.aedat4", events, 128, 128)
    back = tonic.io.read_aedat4(str(tmp_path / "CIFAR10DVS" / "cat" / "0.aedat4"))
    assert len(back) == len(events)
    for ours, theirs in (("t", "t"), ("x", "x"), ("y", "y"), ("p", "on")):  # tonic names the polarity "on", titled "p"
        np.testing.assert_array_equal(back[theirs].astype(np.int64), events[ours].astype(np.int64))
    ds = CIFAR10DVSFiles(str(tmp_path))  # tonic's own CIFAR10DVS.__getitem__ decodes it
    got, label = ds[0]
    assert label == tonic.datasets.CIFAR10DVS.classes["cat"]
    np.testing.assert_array_equal(got["x"].astype(np.int64), events["x"])


def test_aedat4_writer_refuses_what_the_format_cannot_hold(tmp_path):
    with pytest.raises(DataError, match="empty"):
        write_aedat4(tmp_path / "a.aedat4", _random_events(0), 128, 128)
    with pytest.raises(DataError, match="sensor"):
        write_aedat4(tmp_path / "a.aedat4", _random_events(10), 64, 64)
    assert not (tmp_path / "a.aedat4").exists()


def test_stand_in_recordings_read_back_through_tonic(tmp_path):
    ds = event_dataset("cifar10dvs-sim", "test", tmp_path, limit=3)
    names = list(tonic.datasets.CIFAR10DVS.classes)
    for i in range(len(ds)):
        events, label = ds[i]
        assert Path(ds.path(i)).parent.name == names[label]
        assert 20_000 <= len(events) <= 200_000  # README: the stand-in's event counts
        assert 1.25e6 <= events["t"][-1] <= 1.3e6  # four loops of 325 ms
        assert 0.4 < events["p"].mean() < 0.6
        assert events["x"].max() > 100 and events["y"].max() > 100  # the picture fills the 128x128 sensor


def test_generator_is_deterministic_and_fingerprinted():
    image = load_t10k()[0][5]
    a, b = simulate_rcls(image, RCLSParams(), 5), simulate_rcls(image, RCLSParams(), 5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, simulate_rcls(image, RCLSParams(seed=1), 5))
    key = data_fingerprint("cifar10dvs-sim")  # generator parameters only: nothing is generated
    assert key.startswith("cifar10dvs-sim ") and key == data_fingerprint("cifar10dvs-sim")


def test_version_2_splits_counts_and_labels():
    """v2 (the default): 2,000 training and 500 test recordings of distinct t10k digits, each in the
    folder of its digit's class; v1 keeps its 500 / 100."""
    sim = CIFAR10DVSSim()
    train, test = sim.items("train"), sim.items("test")
    assert (len(train), len(test)) == (2000, 500) and sim.rcls.version == 2
    assert len({it.index for it in train} | {it.index for it in test}) == 2500
    labels, names = load_t10k()[1], list(CIFAR10DVSFiles.classes)
    assert all(labels[it.index] == it.label and it.relpath.startswith(names[it.label] + "/") for it in train + test)
    assert min(np.bincount([it.label for it in test], minlength=10)) >= 30  # every class well represented
    v1 = CIFAR10DVSSim.of_version(1)
    assert (len(v1.items("train")), len(v1.items("test"))) == (500, 100) and v1.rcls == RCLSParams.of_version(1)
    with pytest.raises(ValueError, match="versions are 1 and 2"):
        RCLSParams.of_version(3)


def test_version_1_reproduces_and_version_2_varies_the_picture():
    """v1's output is pinned (t10k digit 5, from the v1 generator before v2 existed); v2 draws each
    recording's size, tilt, place, darkness and texture from its own Generator."""
    image = load_t10k()[0][5]
    ev = simulate_rcls(image, RCLSParams.of_version(1), 5)
    assert (len(ev), int(ev["t"].sum()), int(ev["p"].sum()), int(ev["x"].sum())) == (53403, 33745652577, 26778, 3396381)
    v2 = RCLSParams()
    pictures = [picture_of(v2, i) for i in range(20)]
    assert len({p.scale for p in pictures}) == 20 and all(abs(p.rotation_deg) <= v2.rotation_deg for p in pictures)
    assert all(v2.contrast * (1 - v2.contrast_spread) <= p.contrast <= v2.contrast for p in pictures)
    assert picture_of(RCLSParams.of_version(1), 5).rotation_deg == 0.0
    assert not np.array_equal(ev, simulate_rcls(image, v2, 5))


def test_interrupted_generation_is_never_taken_as_complete(tmp_path):
    """A run killed while generating leaves only whole files and no 'complete' mark; the next call
    generates the rest and only then marks the split complete."""
    small = CIFAR10DVSSim(n_train=2, n_test=3)
    wanted = small.items("test")

    class Killed(Exception):
        pass

    written = []

    class Dying(CIFAR10DVSSim):
        def write(self, root, item):
            if len(written) == 2:
                raise Killed
            written.append(item)
            super().write(root, item)

    dying = Dying(n_train=2, n_test=3)
    with pytest.raises(Killed):
        ensure_generated("cifar10dvs-sim", tmp_path, "test", wanted, dying, progress=lambda _: None)
    root = tmp_path / small.folder
    marker = json.loads((root / ".speck_mtt_sim.json").read_text())
    assert marker["complete"] == [] and sorted(p.name for p in root.rglob("*.aedat4")) == sorted(
        Path(it.relpath).name for it in written)
    calls = []
    ensure_generated("cifar10dvs-sim", tmp_path, "test", wanted, small, progress=calls.append)
    assert "generating 1 test recordings" in calls[0]
    assert json.loads((root / ".speck_mtt_sim.json").read_text())["complete"] == ["test"]


def test_corrupt_recording_is_one_clear_error(tmp_path):
    ds = event_dataset("cifar10dvs-sim", "test", tmp_path, limit=1)
    path = Path(ds.path(0))
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match="corrupt or unreadable"):
        ds[0]


def test_data_info_names_the_stand_in(tmp_path):
    out = subprocess.run([SPECK, "data", "info", "cifar10dvs-sim", "--data-dir", str(tmp_path), "--json"],
                         capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    assert info["counts"] == {"train": 2000, "test": 500}
    assert info["sensor_size"] == [128, 128, 2] and info["generator"]["rcls"]["version"] == 2
