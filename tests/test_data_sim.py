"""nmnist-sim / gesture-sim: statistics vs the real sample, determinism, versions, cache marker,
subject split, flip mapping."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from speck_mtt.data import event_dataset
from speck_mtt.data.functional.gestures import (
    CLASSES, FLIP_LABEL, LIGHTING, MAINS_FLICKER_HZ, GestureParams, draw_sample_params, draw_sample_params_v2,
    draw_subject, limb_paths, mirror_params, simulate_gesture,
)
from speck_mtt.data.functional.mnist_idx import load_t10k, real_sample_path
from speck_mtt.data.functional.nmnist_bin import read_nmnist_bin
from speck_mtt.data.functional.events import make_events
from speck_mtt.data.functional.saccades import SaccadeParams, blurred_ink, simulate_saccades
from speck_mtt.data.functional.stats import count_bursts, event_stats, fast_reversals, polarity_overlap
from speck_mtt.data.sim import MARKER, GestureSim, NMNISTSim, ensure_generated
from speck_mtt.errors import DataError


def test_real_sample_has_three_bursts():
    assert count_bursts(read_nmnist_bin(real_sample_path())["t"]) == 3


def test_nmnist_sim_statistics_resemble_real_recordings(tmp_path, real800_dir):
    ds = event_dataset("nmnist-sim", "test", tmp_path, limit=12)
    stats = [event_stats(ds[i][0]) for i in range(len(ds))]
    real_ds = event_dataset("nmnist-real800", "test", real800_dir, limit=12)
    real = [event_stats(real_ds[i][0]) for i in range(len(real_ds))]
    assert len(set(ds.labels)) > 3  # a limit subset spans several digits

    def mean(rows, key):
        return np.mean([r[key] for r in rows])

    for key, rel in (("events", 0.3), ("on_fraction", 0.05), ("duration_ms", 0.05), ("first_event_ms", 0.3),
                     ("y_mean", 0.05), ("active_pixels", 0.2), ("polarity_overlap", 0.3), ("fast_reversals", 0.3)):
        assert abs(mean(stats, key) / mean(real, key) - 1) <= rel, key
    assert abs(mean(stats, "bursts") - mean(real, "bursts")) <= 0.75  # real: 2.7 (the gaps are not silent)


def test_older_generator_versions_reproduce():
    """Versions 1 and 2 keep their exact output (pinned on t10k digit 0): old results stay reproducible."""
    image = load_t10k()[0][0]
    for version, (n, t_sum, n_on) in {1: (3558, 488762412, 1727), 2: (2422, 345713617, 1173)}.items():
        ev = simulate_saccades(image, SaccadeParams.of_version(version), 0)
        assert (len(ev), int(ev["t"].sum()), int(ev["p"].sum())) == (n, t_sum, n_on)
    assert SaccadeParams() == SaccadeParams.of_version(3) and SaccadeParams().version == 3
    with pytest.raises(ValueError, match="versions are 1, 2 and 3"):
        SaccadeParams.of_version(4)


def test_polarity_overlap_and_fast_reversals_on_hand_made_events():
    # pixel (0,0): OFF at 0 ms, ON at 5 ms (same frame, fast); pixel (1,0): ON at 0, OFF at 95 ms;
    # pixel (5,5): one ON at 100 ms, which ends the recording (tonic's ToFrame leaves the last event out)
    ev = make_events([0, 1, 0, 1, 5], [0, 0, 0, 0, 5], [0, 1, 1, 0, 1], [0, 0, 5_000, 95_000, 100_000])
    # 10 frames of 10 ms: cells (f0,px0) both, (f0,px1) ON only, (f9,px1) OFF only
    assert polarity_overlap(ev) == pytest.approx(1 / 3)
    assert fast_reversals(ev) == pytest.approx(1 / 2)
    assert polarity_overlap(ev[:0]) == 0.0 and fast_reversals(ev[:1]) == 0.0


def test_blur_keeps_the_ink_and_pads_it():
    image = np.zeros((28, 28), np.uint8)
    image[10:12, 5:20] = 255
    sharp, pad0 = blurred_ink(image, 0.0)
    ink, pad = blurred_ink(image, 1.1)
    assert pad0 == 0 and pad == 4 and ink.shape == (36, 36)
    assert ink.sum() == pytest.approx(sharp.sum())  # blur moves ink, never loses it
    assert ink.max() < 1.0 and ink[pad + 9, pad + 10] > 0  # the stroke spreads into its neighbours


def test_nmnist_sim_is_deterministic_by_seed(tmp_path):
    image = load_t10k()[0][7]
    a, b = simulate_saccades(image, SaccadeParams(), 7), simulate_saccades(image, SaccadeParams(), 7)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, simulate_saccades(image, SaccadeParams(seed=1), 7))
    d1, d2 = event_dataset("nmnist-sim", "train", tmp_path / "a", limit=3), event_dataset("nmnist-sim", "train", tmp_path / "b", limit=3)
    for i in range(3):
        assert open(d1.path(i), "rb").read() == open(d2.path(i), "rb").read()


def test_nmnist_sim_split_by_digit_image():
    sim = NMNISTSim()
    train, test = sim.items("train"), sim.items("test")
    assert (len(train), len(test)) == (8000, 2000)
    assert not {it.index for it in train} & {it.index for it in test}
    labels = load_t10k()[1]
    assert all(labels[it.index] == it.label and it.relpath.startswith(f"Train/{it.label}/") for it in train[:50])


def test_generation_cached_by_marker_and_regenerated_on_new_params(tmp_path):
    small = NMNISTSim(n_train=4, n_test=2)
    calls = []
    wanted = small.items("test")
    ensure_generated("nmnist-sim", tmp_path, "test", wanted, small, progress=calls.append)
    assert len(calls) == 1 and all((tmp_path / small.folder / it.relpath).is_file() for it in wanted)
    ensure_generated("nmnist-sim", tmp_path, "test", wanted, small, progress=calls.append)
    assert len(calls) == 1  # second call: nothing generated
    other = dataclasses.replace(small, saccades=SaccadeParams(seed=5))
    new = other.items("test")
    ensure_generated("nmnist-sim", tmp_path, "test", new, other, progress=calls.append)
    assert len(calls) == 2
    root = tmp_path / small.folder
    stale = [it for it in wanted if it.relpath not in {n.relpath for n in new}]
    assert stale and not any((root / it.relpath).exists() for it in stale)  # old parameters' files wiped
    assert all((root / it.relpath).is_file() for it in new)


def test_generation_in_worker_processes_writes_the_same_files(tmp_path):
    small = NMNISTSim(n_train=2, n_test=4)
    wanted = small.items("test")
    for folder, workers in (("serial", 1), ("parallel", 2)):
        ensure_generated("nmnist-sim", tmp_path / folder, "test", wanted, small, progress=lambda _: None,
                         workers=workers)
    for it in wanted:
        assert (tmp_path / "parallel" / small.folder / it.relpath).read_bytes() == \
            (tmp_path / "serial" / small.folder / it.relpath).read_bytes()


def test_foreign_folder_is_not_wiped(tmp_path):
    (tmp_path / "nmnist-sim" / "NMNIST").mkdir(parents=True)
    (tmp_path / "nmnist-sim" / "NMNIST" / "mine.txt").write_text("user data")
    with pytest.raises(DataError, match="did not generate"):
        event_dataset("nmnist-sim", "test", tmp_path, limit=1)


def test_gesture_sim_loads_through_tonic(tmp_path):
    ds = event_dataset("gesture-sim", "train", tmp_path, limit=3)
    for i in range(len(ds)):
        events, label = ds[i]
        assert ds.path(i).endswith(f"/{label}.npy") and "ibmGestureTrain/user" in ds.path(i)
        assert 5_000 <= len(events) <= 100_000
        assert events["x"].max() < 128 and events["y"].max() < 128
        assert 1.5e6 <= events["t"].max() <= 2.3e6  # about two seconds, in us
        assert 0.4 <= events["p"].mean() <= 0.6
    assert np.array_equal(simulate_gesture(3, 1, "lab", GestureParams()), simulate_gesture(3, 1, "lab", GestureParams()))


def test_gesture_flip_label_mapping():
    assert [FLIP_LABEL[FLIP_LABEL[i]] for i in range(11)] == list(range(11))
    pairs = {("Right hand wave", "Left hand wave"), ("Right arm cw", "Left arm ccw"), ("Right arm ccw", "Left arm cw")}
    for a, b in pairs:
        assert FLIP_LABEL[CLASSES.index(a)] == CLASSES.index(b)
    assert sum(FLIP_LABEL[i] != i for i in range(11)) == 6


@pytest.mark.parametrize("version", (1, 2))
@pytest.mark.parametrize("label", range(11))
def test_mirrored_gesture_is_the_flipped_class(label, version):
    """A left-right mirror of class l is exactly class FLIP_LABEL[l] with mirrored parameters."""
    params, rng = GestureParams.of_version(version, duration_ms=300), np.random.default_rng(label)
    sp = draw_sample_params(label, params, rng) if version == 1 else draw_sample_params_v2(label, 3, params, rng)
    flipped_label, msp = mirror_params(label, sp)
    assert flipped_label == FLIP_LABEL[label]
    blobs, mirrored = limb_paths(label, sp), limb_paths(flipped_label, msp)
    assert any(part == "body" for _, _, part in blobs) == (version == 2)
    for (path, sigma, part), (mpath, msigma, mpart) in zip(blobs, mirrored, strict=True):
        assert (sigma, part) == (msigma, mpart)
        np.testing.assert_allclose(mpath[:, 0], 127 - path[:, 0], atol=1e-9)
        np.testing.assert_allclose(mpath[:, 1], path[:, 1], atol=1e-9)


def test_gesture_version_1_reproduces():
    """Version 1 keeps its exact output and its 16 + 6 users, one lighting folder each."""
    pinned = {(3, 1, "fluorescent"): (36431, 33456366000, 18091, "7dfda4e77ac67d25"),
              (10, 24, "lab"): (9913, 8878571000, 4939, "37f00013edd6e6e8")}
    v1 = GestureParams.of_version(1)
    for (label, user, light), want in pinned.items():
        ev = simulate_gesture(label, user, light, v1)
        assert (len(ev), int(ev["t"].sum()), int(ev["p"].sum()), hashlib.sha256(ev.tobytes()).hexdigest()[:16]) == want
    sim = GestureSim(v1)
    assert (len(sim.items("train")), len(sim.items("test"))) == (176, 66)
    assert sim.items("test")[0].relpath == "ibmGestureTest/user24_led/0.npy"
    assert GestureParams() == GestureParams.of_version(2) and GestureParams().version == 2
    with pytest.raises(ValueError, match="versions are 1 and 2"):
        GestureParams.of_version(3)


def test_gesture_v2_split_counts_labels_and_disjoint_subjects():
    sim = GestureSim()
    train, test = sim.items("train"), sim.items("test")
    assert (len(train), len(test)) == (23 * 5 * 11, 6 * 5 * 11)  # 1265, 330: DVS-Gesture's 23 / 6 subjects
    assert {it.index for it in train} == set(range(1, 24)) and {it.index for it in test} == set(range(24, 30))
    for split, items in (("Train", train), ("Test", test)):
        folders = {}
        for it in items:
            folder, user_light, name = it.relpath.split("/")
            assert folder == f"ibmGesture{split}" and name == f"{it.label}.npy"
            assert user_light.startswith(f"user{it.index:02d}_")
            folders.setdefault(user_light, []).append(it.label)
        assert all(sorted(labels) == list(range(11)) for labels in folders.values())
        assert {f.split("_", 1)[1] for f in folders} == set(LIGHTING)
    assert draw_subject(24, GestureParams()) == draw_subject(24, GestureParams())
    assert draw_subject(24, GestureParams()) != draw_subject(23, GestureParams())


def test_gesture_v2_is_deterministic_and_the_lighting_shows():
    small = GestureParams(duration_ms=400)
    a = simulate_gesture(4, 25, "fluorescent", small)
    assert np.array_equal(a, simulate_gesture(4, 25, "fluorescent", small))
    assert not np.array_equal(a, simulate_gesture(4, 26, "fluorescent", small))
    assert not np.array_equal(a, simulate_gesture(4, 25, "led", small))
    # fluorescent flicker: pixels that fire again and again at the mains period (8.3 ms), LED none
    def flicker_share(ev):
        rows = ev[ev["p"] == 1]
        gaps = np.diff(rows["t"][np.lexsort((rows["t"], rows["y"], rows["x"]))]) / 1000
        return np.mean(np.abs(gaps / (1000 / MAINS_FLICKER_HZ) - np.rint(gaps / (1000 / MAINS_FLICKER_HZ))) < 0.05)
    assert flicker_share(simulate_gesture(0, 25, "fluorescent", small)) > flicker_share(simulate_gesture(0, 25, "led", small)) + 0.1


def test_gesture_generation_resumes_and_marks_complete_only_when_whole(tmp_path):
    """A part of a split (as after a kill) is never marked complete; the next call writes only the rest."""
    tiny = GestureSim(GestureParams(train_users=1, sessions=1, duration_ms=200))
    items = tiny.items("train")
    calls = []
    ensure_generated("gesture-sim", tmp_path, "train", items[:4], tiny, progress=calls.append)
    root = tmp_path / tiny.folder
    assert json.loads((root / MARKER).read_text())["complete"] == []
    (root / items[5].relpath).with_name(".5.npy.123.tmp").write_bytes(b"half")  # what a kill mid-write leaves
    ensure_generated("gesture-sim", tmp_path, "train", items, tiny, progress=calls.append)
    assert calls[-1].startswith("gesture-sim: generating 7 train")
    assert json.loads((root / MARKER).read_text())["complete"] == ["train"]
    ds = tiny.open(tmp_path / "gesture-sim", train=True)
    assert sorted(ds.targets) == list(range(11)) and set(ds.users) == {1}
