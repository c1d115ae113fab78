"""N-MNIST decoder/writer, event validation, offline errors and corrupt-file handling."""

from __future__ import annotations


import numpy as np
import pytest
import tonic

from speck_mtt.data import DATASETS, EVENT_DTYPE, event_dataset, resolve_dataset
from speck_mtt.data.datasets import _cifar_split, subset
from speck_mtt.data.functional.events import check_events, make_events
from speck_mtt.data.functional.gestures import encode_gesture_npy
from speck_mtt.data.functional.mnist_idx import load_t10k, real_sample_path
from speck_mtt.data.functional.nmnist_bin import MAX_T_US, encode_nmnist, read_nmnist_bin, write_nmnist_bin
from speck_mtt.errors import DataError


def nmnist_layout(root, files: dict[str, bytes]):
    """A tiny real-format NMNIST folder (tonic layout) with the given relative files."""
    for rel, data in files.items():
        path = root / "NMNIST" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_golden_sample_decodes_through_tonic():
    events = read_nmnist_bin(real_sample_path())
    assert events.dtype == EVENT_DTYPE
    assert len(events) == 4325
    assert (events["t"].min(), events["t"].max()) == (654, 311_175)
    raw = tonic.io.read_mnist_file(str(real_sample_path()), dtype=tonic.datasets.NMNIST.dtype)
    assert np.array_equal(raw["x"], events["x"]) and np.array_equal(raw["p"], events["p"])


def test_golden_sample_through_tonic_nmnist_class(tmp_path):
    nmnist_layout(tmp_path, {"Test/3/00000.bin": real_sample_path().read_bytes()})
    ds = event_dataset("nmnist", "test", tmp_path)
    events, label = ds[0]
    assert (len(ds), label, len(events), int(events["t"][0]), int(events["t"][-1])) == (1, 3, 4325, 654, 311_175)


def test_writer_reproduces_the_real_file_byte_for_byte():
    data = real_sample_path().read_bytes()
    assert encode_nmnist(read_nmnist_bin(real_sample_path())) == data


def test_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    n = 500
    events = make_events(rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n),
                         np.sort(rng.integers(0, MAX_T_US + 1, n)))
    write_nmnist_bin(tmp_path / "x.bin", events)
    back = read_nmnist_bin(tmp_path / "x.bin")
    for f in ("x", "y", "p", "t"):
        assert np.array_equal(back[f], events[f]), f


@pytest.mark.parametrize("bad", [{"t": MAX_T_US + 1}, {"y": 240}, {"p": 2}, {"x": -1}])
def test_writer_rejects_unencodable_events(bad):
    events = make_events([1, 2], [1, 2], [0, 1], [0, 10])
    for k, v in bad.items():
        events[k][1] = v
    with pytest.raises(DataError):
        encode_nmnist(events)
    with pytest.raises(DataError, match="empty"):
        encode_nmnist(events[:0])


def test_corrupt_bin_files_name_the_file_and_problem(tmp_path):
    good = real_sample_path().read_bytes()
    outside = encode_nmnist(make_events([40], [3], [1], [5]))  # x = 40 on a 34x34 sensor
    nmnist_layout(tmp_path, {"Test/0/00001.bin": good, "Test/0/00002.bin": good[:-3],
                             "Test/0/00003.bin": b"", "Test/0/00004.bin": outside})
    ds = event_dataset("nmnist", "test", tmp_path)
    assert ds[0][0].size == 4325
    for i, problem in ((1, "truncated"), (2, "empty"), (3, "outside the 34x34 sensor")):
        with pytest.raises(DataError, match=problem) as err:
            ds[i]
        assert ds.path(i) in str(err.value)
    with pytest.raises(DataError):  # iterating an epoch fails loudly, nothing vanishes
        [ds[i] for i in range(len(ds))]


def test_corrupt_npy_files(tmp_path):
    folder = tmp_path / "DVSGesture" / "ibmGestureTest" / "user24_lab"
    folder.mkdir(parents=True)
    ok = encode_gesture_npy(make_events([1, 5], [2, 6], [0, 1], [0, 3_000_000]))  # t in us -> ms
    np.save(folder / "0.npy", ok)
    (folder / "1.npy").write_bytes((folder / "0.npy").read_bytes()[:-5])
    np.save(folder / "2.npy", np.array([[200, 3, 1, 5]], dtype=np.int32))
    np.save(folder / "3.npy", np.zeros((0, 4), dtype=np.int32))
    np.save(folder / "4.npy", np.zeros((3, 3), dtype=np.int32))
    ds = event_dataset("gesture", "test", tmp_path)
    events, label = ds[0]
    assert label == 0 and events["t"].tolist() == [0, 3_000_000]
    for i, problem in ((1, "corrupt"), (2, "outside"), (3, "empty"), (4, "corrupt")):
        with pytest.raises(DataError, match=problem) as err:
            ds[i]
        assert f"{i}.npy" in str(err.value)


def test_check_events_sorts_and_validates():
    ev = check_events(make_events([1, 2, 3], [0, 0, 0], [1, 0, 1], [30, 10, 20]), (34, 34, 2), "x")
    assert ev["t"].tolist() == [10, 20, 30] and ev["x"].tolist() == [2, 3, 1]
    with pytest.raises(DataError, match="negative"):
        check_events(make_events([1], [1], [1], [-5]), (34, 34, 2), "x")


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset 'mnist'.*nmnist-sim"):
        event_dataset("mnist", "train")


def test_offline_errors_name_the_layout_and_never_download(tmp_path, monkeypatch, capsys):
    def no_download(*a, **k):
        raise AssertionError("tried to download")

    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", no_download)
    with pytest.raises(DataError, match=r"NMNIST/\{Train,Test\}/<digit 0-9>/<id>\.bin"):
        resolve_dataset("nmnist", tmp_path)  # a data dir given explicitly: never the stand-in
    with pytest.raises(DataError, match=r"CIFAR10DVS/<airplane\|"):
        resolve_dataset("cifar10dvs", tmp_path)
    with pytest.raises(DataError, match=r"ibmGestureTrain\|ibmGestureTest/userNN_<lighting>/<label>\.npy"):
        event_dataset("gesture", "train", tmp_path)
    monkeypatch.setenv("SPECK_MTT_DATA", str(tmp_path))  # the default data dir: the stand-in, said loudly
    assert resolve_dataset("gesture") == "gesture-sim"
    assert "warning: gesture files not found" in capsys.readouterr().err
    with pytest.raises(DataError, match=r"expected .*NMNIST/\{Train,Test\}"):
        resolve_dataset("nmnist", fallback=False)
    assert resolve_dataset("nmnist-sim", tmp_path) == "nmnist-sim"


def test_real_nmnist_present_is_used(tmp_path):
    sample = real_sample_path().read_bytes()
    nmnist_layout(tmp_path, {"Train/1/00001.bin": sample, "Test/2/00002.bin": sample})
    assert resolve_dataset("nmnist", tmp_path) == "nmnist"


def test_cifar_split_is_9_to_1_per_class_and_fixed():
    targets = np.repeat(np.arange(10), 50).tolist()
    train, test = _cifar_split(targets, True), _cifar_split(targets, False)
    assert not set(train) & set(test) and len(train) + len(test) == 500
    assert np.bincount(np.asarray(targets)[test]).tolist() == [5] * 10
    assert _cifar_split(targets, False) == test


def test_limit_subsets_are_nested_and_fixed():
    assert subset(100, 10) == subset(100, 10)
    assert set(subset(100, 10)) <= set(subset(100, 30))
    assert subset(5, None) == list(range(5))


def test_registry_and_packaged_mnist():
    images, labels = load_t10k()
    assert images.shape == (10_000, 28, 28) and labels.shape == (10_000,) and labels.max() == 9
    assert {n: DATASETS[n].n_classes for n in DATASETS} == {
        "nmnist": 10, "nmnist-sim": 10, "nmnist-real800": 10, "gesture": 11, "gesture-sim": 11, "cifar10dvs": 10,
        "cifar10dvs-sim": 10}
    assert DATASETS["nmnist"].stand_in == "nmnist-sim" and DATASETS["cifar10dvs"].stand_in is None


def backwards(events: np.ndarray) -> np.ndarray:
    """The recording's second half restarting at t = 0, as a corrupt or concatenated file has it."""
    out = events.copy()
    half = len(out) // 2
    out["t"][half:] -= out["t"][half]
    return out


def test_nmnist_time_running_backwards_is_refused_by_data_prepare(tmp_path):
    """N-MNIST: refused (23-bit timestamps: a drop is a lost overflow record or two files glued)."""
    import subprocess
    import sys
    from pathlib import Path

    events = read_nmnist_bin(real_sample_path())
    good = real_sample_path().read_bytes()
    files = {f"{split}/{d}/{d:05d}.bin": good for split in ("Train", "Test") for d in range(10)}
    files["Train/4/00004.bin"] = encode_nmnist(backwards(events))
    nmnist_layout(tmp_path, files)
    half = len(events) // 2
    done = subprocess.run([str(Path(sys.executable).with_name("speck-mtt")), "data", "prepare", "nmnist", "--data-dir",
                           str(tmp_path), "--frames", "2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.strip() == (
        f"error: {tmp_path}/NMNIST/Train/4/00004.bin: time runs backwards at event {half} of {len(events)} "
        f"(t = 0 us after {events['t'][half - 1]} us; 1 backward steps): a corrupt or concatenated recording; "
        "delete or replace the file")
    assert not list((tmp_path / "frame_cache").rglob("meta.json"))  # no cache of the train split


def test_gesture_and_aedat4_time_running_backwards_is_sorted_with_one_warning(tmp_path, capsys):
    """DVS-Gesture .npy and CIFAR10-DVS .aedat4 carry full timestamps per event: sorted, said once."""
    from speck_mtt.data.functional import aedat4

    rng = np.random.default_rng(0)
    t = np.sort(rng.integers(0, 50_000, 200)) * 1000  # ms steps: the gesture .npy stores milliseconds
    events = make_events(rng.integers(0, 128, 200), rng.integers(0, 128, 200), rng.integers(0, 2, 200), t)
    user = tmp_path / "DVSGesture" / "ibmGestureTrain" / "user01_led"
    user.mkdir(parents=True)
    for label in range(11):
        np.save(user / f"{label}.npy", encode_gesture_npy(backwards(events) if label == 5 else events))
    ds = event_dataset("gesture", "train", tmp_path)
    five = next(i for i in range(len(ds)) if ds.path(i).endswith("/5.npy"))
    for _ in range(2):
        got, _ = ds[five]
        assert np.array_equal(got["t"], np.sort(backwards(events)["t"], kind="stable"))
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: {user}/5.npy: time runs backwards at event 100 of 200")
    assert err[0].endswith("; sorted by time")

    # an .aedat4 whose two halves are swapped (our writer refuses unsorted events: swap them in the bytes)
    data = bytearray(aedat4.encode_aedat4(events, 128, 128))
    start = len(aedat4.MAGIC) + 4 + len(aedat4._ioheader(aedat4._DESCRIPTION.format(w=128, h=128))) + 8 + 32
    records = data[start:start + 16 * 200]
    data[start:start + 16 * 200] = records[16 * 100:] + records[:16 * 100]
    folder = tmp_path / "CIFAR10DVS" / "cat"
    folder.mkdir(parents=True)
    (folder / "00001.aedat4").write_bytes(bytes(data))
    from speck_mtt.data.tonic_sets import CIFAR10DVSFiles
    from speck_mtt.data.functional.events import check_events as check

    files = CIFAR10DVSFiles(str(tmp_path))
    raw, _ = files[0]
    assert (np.diff(raw["t"].astype(np.int64)) < 0).any()  # tonic reads it back unsorted
    got = check(raw, DATASETS["cifar10dvs"].sensor_size, files.data[0], files.time_sortable)
    assert np.array_equal(got["t"], events["t"]) and "sorted by time" in capsys.readouterr().err
