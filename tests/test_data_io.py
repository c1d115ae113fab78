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
        resolve_dataset("nmnist", tmp_path, fallback=False)
    with pytest.raises(DataError, match=r"CIFAR10DVS/<airplane\|"):
        resolve_dataset("cifar10dvs", tmp_path)
    with pytest.raises(DataError, match=r"ibmGestureTrain\|ibmGestureTest/userNN_<lighting>/<label>\.npy"):
        event_dataset("gesture", "train", tmp_path)
    assert resolve_dataset("gesture", tmp_path) == "gesture-sim"
    assert "gesture-sim" in capsys.readouterr().err
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
