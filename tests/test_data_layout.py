"""Real-dataset folders as users leave them: label folders checked against the classes, exact
extensions, empty classes, a missing split, files changed in place, and resuming on other data.
Built from the one real N-MNIST recording (speck_mtt/data/assets/sample_nmnist.bin)."""

from __future__ import annotations

import os
import shutil

import pytest
from typer.testing import CliRunner

from speck_mtt.commands.data import app as data_app
from speck_mtt.data import event_dataset, frame_dataset, resolve_dataset
from speck_mtt.data.datasets import data_fingerprint
from speck_mtt.data.functional.mnist_idx import real_sample_path
from speck_mtt.errors import DataError, SpeckMttError
from speck_mtt.training.loop import load_frames, run
from speck_mtt.training.recipe import load_recipe
from test_train import crash_after


def nmnist_copy(root, per_class: int = 1):
    """root/NMNIST/{Train,Test}/<0-9>/<id>.bin, every file the real recording."""
    data = real_sample_path().read_bytes()
    for split in ("Train", "Test"):
        for digit in range(10):
            folder = root / "NMNIST" / split / str(digit)
            folder.mkdir(parents=True)
            for i in range(per_class):
                (folder / f"{digit * per_class + i:05d}.bin").write_bytes(data)
    return root


@pytest.mark.parametrize("folder", ["10", "x", "3a"])
def test_a_folder_that_is_not_a_label_is_refused_by_name(tmp_path, folder):
    nmnist_copy(tmp_path)
    (tmp_path / "NMNIST" / "Train" / folder).mkdir()
    shutil.copy(real_sample_path(), tmp_path / "NMNIST" / "Train" / folder / "00099.bin")
    with pytest.raises(DataError, match=rf"NMNIST/Train/{folder}: not a label folder \(N-MNIST labels are the "
                                        r"folders 0 to 9\); expected .*NMNIST/\{Train,Test\}/<digit 0-9>"):
        event_dataset("nmnist", "train", tmp_path)


def test_only_the_exact_extension_counts_and_hidden_files_are_skipped(tmp_path):
    nmnist_copy(tmp_path)
    for name in ("notes.xbin", "00000.bin.bak", ".DS_Store", "._00000.bin", ".00000.bin.123.abc.tmp"):
        (tmp_path / "NMNIST" / "Train" / "0" / name).write_text("not a recording")
    (tmp_path / "NMNIST" / "Train" / "README.txt").write_text("a note beside the label folders")
    ds = event_dataset("nmnist", "train", tmp_path)
    assert len(ds) == 10 and sorted(ds.labels) == list(range(10))
    assert all(ds.path(i).endswith(".bin") for i in range(len(ds)))
    (tmp_path / "NMNIST" / "Train" / "stray.bin").write_bytes(real_sample_path().read_bytes())
    with pytest.raises(DataError, match="stray.bin: a recording outside a class folder"):
        event_dataset("nmnist", "train", tmp_path)


def test_an_empty_class_warns_in_data_info_and_stops_training(tmp_path):
    nmnist_copy(tmp_path)
    for f in (tmp_path / "NMNIST" / "Train" / "3").iterdir():
        f.unlink()
    res = CliRunner().invoke(data_app, ["info", "nmnist", "--data-dir", str(tmp_path)])
    assert res.exit_code == 0 and "train 9, test 10 recordings" in res.stdout
    assert "warning: nmnist train: no recordings of class 3;" in res.stderr
    recipe = load_recipe("nmnist", overrides={"train": {"t_max": 2}})
    with pytest.raises(DataError, match=r"nmnist train: no recordings of class 3 .*data\.allow_empty_classes=true"):
        load_frames(recipe, str(tmp_path))
    allowed = load_recipe("nmnist", overrides={"train": {"t_max": 2}, "data": {"allow_empty_classes": True}})
    train = load_frames(allowed, str(tmp_path)).train
    assert len(train) == 9


def test_a_missing_split_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    nmnist_copy(tmp_path)
    shutil.rmtree(tmp_path / "NMNIST" / "Test")
    monkeypatch.setenv("SPECK_MTT_DATA", str(tmp_path))
    with pytest.raises(DataError, match="nmnist: the test split is missing .* although the other split is there"):
        resolve_dataset("nmnist")
    shutil.rmtree(tmp_path / "NMNIST" / "Train")
    assert resolve_dataset("nmnist") == "nmnist-sim"  # nothing in the default data dir at all: the stand-in


def test_a_recording_changed_in_place_invalidates_the_frame_cache(tmp_path):
    nmnist_copy(tmp_path)
    first = frame_dataset("nmnist", "train", 2, tmp_path)
    victim = tmp_path / "NMNIST" / "Train" / "4" / "00004.bin"
    stat = victim.stat()
    data = bytearray(victim.read_bytes())
    data[0] = 200  # first event at x = 200: outside the 34x34 sensor, same size
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with the old mtime
    assert victim.stat().st_size == stat.st_size
    with pytest.raises(DataError, match=f"{victim}: "):
        frame_dataset("nmnist", "train", 2, tmp_path)  # decoded again, not served from the old cache
    assert (first.cache_dir / "meta.json").is_file()


def test_fingerprint_follows_the_bytes(tmp_path):
    a = nmnist_copy(tmp_path / "a")
    b = nmnist_copy(tmp_path / "b")
    assert data_fingerprint("nmnist", a) == data_fingerprint("nmnist", b)
    f = b / "NMNIST" / "Test" / "7" / "00007.bin"
    data = bytearray(f.read_bytes())
    data[-1] ^= 1  # the last event's timestamp, one microsecond: still a valid recording
    f.write_bytes(bytes(data))
    before, after = data_fingerprint("nmnist", a).split(), data_fingerprint("nmnist", b).split()
    assert before[:2] == after[:2] and before[2] != after[2]  # name and train split alike, test split not


def test_resume_on_other_data_is_refused(tmp_path):
    a = nmnist_copy(tmp_path / "a")
    b = nmnist_copy(tmp_path / "b")
    f = b / "NMNIST" / "Train" / "2" / "00002.bin"
    data = bytearray(f.read_bytes())
    data[-1] ^= 1
    f.write_bytes(bytes(data))

    def recipe():
        return load_recipe("nmnist", overrides={"data": {"batch_size": 5}, "eval": {"batch_size": 10},
                                                 "train": {"t_max": 2, "epochs": 2, "calib_batches": 1}})

    with pytest.raises(RuntimeError, match="simulated crash"):
        run(recipe(), tmp_path / "out", data_dir=str(a), progress=False, on_epoch=crash_after(1))
    with pytest.raises(SpeckMttError, match=r"last\.pt was trained on other data \(nmnist .*; now nmnist .*\); "
                                            "resume with the same --dataset, --data-dir and files"):
        run(recipe(), tmp_path / "out", data_dir=str(b), progress=False, resume=True)
    summary = run(recipe(), tmp_path / "out", data_dir=str(a), progress=False, resume=True)
    assert summary["eval"]["dataset"] == "nmnist"


def test_gesture_and_cifar_folders_are_checked_against_their_classes(tmp_path):
    import numpy as np

    from speck_mtt.data.functional.events import make_events
    from speck_mtt.data.functional.gestures import encode_gesture_npy

    events = make_events(np.arange(5), np.arange(5), np.ones(5, int), np.arange(5) * 1000)
    user = tmp_path / "DVSGesture" / "ibmGestureTrain" / "user01_led"
    user.mkdir(parents=True)
    for label in range(11):
        np.save(user / f"{label}.npy", encode_gesture_npy(events))
    (user / "3.xnpy").write_text("not a recording")
    ds = event_dataset("gesture", "train", tmp_path)
    assert sorted(ds.labels) == list(range(11)) and ds.tonic_dataset.users == [1] * 11
    np.save(user / "11.npy", encode_gesture_npy(events))
    with pytest.raises(DataError, match=r"user01_led/11\.npy: not a gesture label file \(<label>\.npy, label 0 to 10\)"):
        event_dataset("gesture", "train", tmp_path)
    (user / "11.npy").unlink()
    (user.parent / "notes").mkdir()
    with pytest.raises(DataError, match=r"ibmGestureTrain/notes: not a user folder"):
        event_dataset("gesture", "train", tmp_path)
    (tmp_path / "CIFAR10DVS" / "aeroplane").mkdir(parents=True)
    (tmp_path / "CIFAR10DVS" / "aeroplane" / "0.aedat4").write_bytes(b"x")
    with pytest.raises(DataError, match=r"CIFAR10DVS/aeroplane: not a class folder \(airplane, automobile"):
        event_dataset("cifar10dvs", "train", tmp_path)
