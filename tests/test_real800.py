"""nmnist-real800: the 800 real N-MNIST recordings shipped in the package (unpacking, counts, labels,
evaluation-only use, measurement and statistics against nmnist-sim)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from speck_mtt.checkpoint import make_checkpoint, save_checkpoint
from speck_mtt.data import event_dataset
from speck_mtt.data.bundled import BUNDLES, MARKER, unpack
from speck_mtt.data.inventory import MAX_KS, compare_to_real
from speck_mtt.data.datasets import open_source
from speck_mtt.data.functional.events import make_events
from speck_mtt.data.functional.mnist_idx import ASSETS, load_t10k
from speck_mtt.data.functional.saccades import SaccadeParams, simulate_saccades
from speck_mtt.data.functional.stats import (
    distributions, events_per_saccade, isolated_fraction, ks_distance, pixel_intervals_us, saccade_peaks_ms,
)
from speck_mtt.errors import DataError
from speck_mtt.measure import measure
from speck_mtt.models import build_model
from speck_mtt.chip.deploy import deploy

SPECK = Path(sys.executable).with_name("speck-mtt")
PER_CLASS = [79, 98, 81, 73, 81, 72, 73, 86, 73, 84]  # files per digit folder in the archive


@pytest.fixture
def data_dir(real800_dir):
    return real800_dir


def test_unpack_once_and_idempotent(data_dir):
    root = data_dir / "nmnist-real800"
    assert (root / MARKER).is_file()
    assert len(list(root.rglob("*.bin"))) == 800
    marker = (root / MARKER).stat().st_mtime_ns
    assert unpack("nmnist-real800", data_dir) == root and (root / MARKER).stat().st_mtime_ns == marker
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_corrupt_archive_is_refused_with_one_line(tmp_path):
    bad = tmp_path / "nmnist-real800.tar.xz"
    raw = bytearray((ASSETS / BUNDLES["nmnist-real800"].archive).read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="corrupt nmnist-real800 archive") as err:
        unpack("nmnist-real800", tmp_path / "data", archive=bad)
    assert "\n" not in str(err.value) and "reinstall" in str(err.value)
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())
    (tmp_path / "data" / "nmnist-real800").mkdir(parents=True)  # a folder not unpacked by us is left alone
    with pytest.raises(DataError, match="not unpacked by speck-mtt"):
        unpack("nmnist-real800", tmp_path / "data")


def test_counts_labels_and_decoding(data_dir):
    src = open_source("nmnist-real800", "test", data_dir)
    assert len(src.relpaths) == 800 and np.bincount(src.labels).tolist() == PER_CLASS
    assert all(rel.split("/")[:2] == ["Train", str(label)] for rel, label in zip(src.relpaths, src.labels))
    ds = event_dataset("nmnist-real800", "test", data_dir, limit=3)
    for i in range(len(ds)):
        events, label = ds[i]
        assert label == int(Path(ds.path(i)).parent.name) and 1000 < len(events) < 8000
        assert events["x"].max() < 34 and events["y"].max() < 34 and np.all(np.diff(events["t"].astype(np.int64)) >= 0)


def test_training_split_is_refused(data_dir):
    with pytest.raises(DataError, match="evaluation set"):
        open_source("nmnist-real800", "train", data_dir)


def test_cli_info_and_train_refusal(data_dir):
    env = {**os.environ, "SPECK_MTT_DATA": str(data_dir)}
    run = subprocess.run([str(SPECK), "data", "info", "nmnist-real800", "--json", "--stats-samples", "5"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    info = json.loads(run.stdout)
    assert info["counts"] == {"train": 0, "test": 800}
    assert [info["per_class"][str(d)] for d in range(10)] == PER_CLASS
    assert info["statistics"]["n_samples"] == 5 and 1000 < info["statistics"]["real"]["events"]["mean"] < 8000
    run = subprocess.run([str(SPECK), "train", "nmnist", "--dataset", "nmnist-real800", "--quick",
                          "--out", str(data_dir / "never")], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "evaluation set" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not (data_dir / "never" / "model.pt").exists()


def test_measure_on_real_recordings_at_t_max(data_dir, tmp_path):
    torch.manual_seed(0)
    model = build_model("nmnist_3c1fc")
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    save_checkpoint(make_checkpoint(model, {}, t_max=4), tmp_path / "ckpt.pt")
    deploy(tmp_path / "ckpt.pt", "sim", tmp_path / "dep", samples=0)
    report = measure(tmp_path / "dep", dataset="nmnist-real800", data_dir=data_dir, limit=4, workers=1)
    assert report["dataset"] == "nmnist-real800" and report["n_samples"] == 4
    assert [row["t"] for row in report["torch"]] == [4] and report["torch"][0]["n_samples"] == 4
    assert report["written"].endswith("measure-sim-nmnist-real800.json")
    assert not (tmp_path / "dep" / "measure-sim.json").exists()  # the stand-in measurement is never overwritten


def test_statistics_on_hand_made_events():
    # pixel (3,3) fires at 0, 1 and 4 ms; a lone event far away at 150 ms; one at 250 ms next to another
    ev = make_events([3, 3, 3, 20, 10, 11], [3, 3, 3, 20, 30, 30], [1, 0, 1, 1, 0, 1],
                     [0, 1_000, 4_000, 150_000, 250_000, 251_000])
    assert events_per_saccade(ev).tolist() == [3, 1, 2]
    assert saccade_peaks_ms(ev).tolist() == [2.5, 152.5, 252.5]
    assert sorted(pixel_intervals_us(ev).tolist()) == [1_000, 3_000]
    assert isolated_fraction(ev) == pytest.approx(1 / 6)


def test_ks_distance():
    a = np.array([1.0, 2.0, 3.0])
    assert ks_distance(a, a) == 0.0
    assert ks_distance(a, a + 10) == 1.0
    assert ks_distance(a, np.array([2.0, 3.0, 4.0])) == pytest.approx(1 / 3)
    assert ks_distance(np.array([np.nan, 1.0]), np.array([1.0])) == 0.0
    assert np.isnan(ks_distance(np.array([np.nan]), a))
    # integer statistics (events, bursts) tie a lot: the largest gap between the two empirical CDFs
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 8, 301).astype(float), rng.integers(1, 9, 177).astype(float)
    grid = np.concatenate([x, y])
    gap = np.abs((x[None] <= grid[:, None]).mean(1) - (y[None] <= grid[:, None]).mean(1)).max()
    assert ks_distance(x, y) == pytest.approx(gap, abs=1e-12)


def test_drift_check_passes_real_against_itself_and_fails_a_drifted_generator(data_dir):
    ds = event_dataset("nmnist-real800", "test", data_dir, limit=12)
    real = distributions([ds[i][0] for i in range(len(ds))])
    same = compare_to_real(real, real)
    assert all(same["checks"].values()) and max(same["ks"].values()) == 0.0 and same["max_ks"] == MAX_KS
    images = load_t10k()[0]
    coarse = SaccadeParams(threshold=0.8, noise_hz=0.0)  # far fewer events per edge than any real recording
    drifted = compare_to_real(distributions([simulate_saccades(images[i], coarse, i) for i in range(12)]), real)
    assert not drifted["checks"]["events"] and not drifted["checks"]["isolated_fraction"]
