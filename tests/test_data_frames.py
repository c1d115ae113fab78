"""Frame cache: ToFrame counts, coarse T by the TTM grouping, cache keys, augmentation, CLI."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import tonic
import torch
from typer.testing import CliRunner

from speck_mtt.data import event_dataset, frame_dataset
from speck_mtt.commands.data import app
from speck_mtt.data.datasets import open_source
from speck_mtt.data.frame_cache import cache_dir_for, cache_spec
from speck_mtt.data.functional.events import make_events
from speck_mtt.data.functional.frames import augment_frames, flip_lr, thin, to_frames
from speck_mtt.data.functional.gestures import FLIP_LABEL
from speck_mtt.errors import DataError
from speck_mtt.timegroups import resample_time


def events_spanning(duration_us: int, n: int = 3000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, duration_us + 1, n))
    t[0], t[-1] = 0, duration_us
    return make_events(rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n), t)


@pytest.mark.parametrize("t_coarse", [1, 2, 3, 4, 6])
def test_coarse_frames_equal_toframe_where_exact(t_coarse):
    """With the duration divisible by T_max = 12, tonic's bins nest and the TTM sums match ToFrame."""
    ev = events_spanning(120_000)
    fine = torch.from_numpy(to_frames(ev, (34, 34, 2), 12).astype(np.float32))
    derived = resample_time(fine, t_coarse, dim=0)
    direct = to_frames(ev, (34, 34, 2), t_coarse)
    assert direct.shape == (t_coarse, 2, 34, 34)
    assert np.array_equal(derived.numpy(), direct)


def test_frame_dataset_derives_coarse_t_from_the_cache(tmp_path):
    fine = frame_dataset("nmnist-sim", "train", 10, tmp_path, limit=4)
    coarse = frame_dataset("nmnist-sim", "train", 3, tmp_path, limit=4, cache_frames=10)
    assert coarse.cache_dir == fine.cache_dir  # one cache at T_max serves every T
    for i in range(4):
        x10, y10 = fine[i]
        x3, y3 = coarse[i]
        assert x10.shape == (10, 2, 34, 34) and x10.dtype == torch.float32 and y3 == y10
        assert torch.equal(x3, resample_time(x10, 3, dim=0))
    # the cache holds exactly tonic's ToFrame counts of each recording
    ev, _ = event_dataset("nmnist-sim", "train", tmp_path, limit=4)[0]
    expect = tonic.transforms.ToFrame(sensor_size=(34, 34, 2), n_time_bins=10)(ev)
    assert np.array_equal(fine[0][0].numpy(), expect)
    with pytest.raises(DataError, match="cache_frames"):
        frame_dataset("nmnist-sim", "train", 12, tmp_path, limit=4, cache_frames=10)


def test_cache_key_distinguishes_dataset_split_t_transform_and_samples(tmp_path):
    a = open_source("nmnist-sim", "train", tmp_path, limit=3)
    b = open_source("nmnist-sim", "test", tmp_path, limit=3)
    c = open_source("gesture-sim", "train", tmp_path, limit=3)
    d = open_source("nmnist-sim", "train", tmp_path, limit=5)
    specs = [cache_spec(a, 10), cache_spec(a, 12), cache_spec(b, 10), cache_spec(c, 10), cache_spec(d, 10)]
    other_transform = dict(specs[0], transform=specs[0]["transform"].replace("n_time_bins=10", "n_time_bins=10, overlap=0.5"))
    other_params = dict(specs[0], source="0123456789abcdef")
    dirs = {cache_dir_for(tmp_path, s) for s in [*specs, other_transform, other_params]}
    assert len(dirs) == 7
    assert cache_dir_for(tmp_path, cache_spec(a, 10)) == cache_dir_for(tmp_path, specs[0])  # stable
    assert "nmnist-sim/train-T10-" in cache_dir_for(tmp_path, specs[0]).as_posix()


def test_cache_is_built_once(tmp_path):
    ds = frame_dataset("nmnist-sim", "test", 5, tmp_path, limit=2)
    stamp = (ds.cache_dir / "frames.npy").stat().st_mtime_ns
    again = frame_dataset("nmnist-sim", "test", 5, tmp_path, limit=2)
    assert again.cache_dir == ds.cache_dir and (ds.cache_dir / "frames.npy").stat().st_mtime_ns == stamp
    assert ds.frames.dtype == np.uint8 and json.loads((ds.cache_dir / "meta.json").read_text())["n_samples"] == 2
    blob = pickle.dumps(ds)  # DataLoader workers (spawn) get a reopened memory map, not a copy
    assert len(blob) < ds.frames.nbytes and torch.equal(pickle.loads(blob)[1][0], ds[1][0])


def test_frame_flip_equals_tonic_event_flip_and_remaps_label():
    ev = events_spanning(50_000)
    sensor = (34, 34, 2)
    flipped_events = tonic.transforms.RandomFlipLR(sensor_size=sensor, p=1.0)(ev)
    frames = torch.from_numpy(to_frames(ev, sensor, 4).astype(np.float32))
    ff, label = flip_lr(frames, 1, FLIP_LABEL)
    assert torch.equal(ff, torch.from_numpy(to_frames(flipped_events, sensor, 4).astype(np.float32)))
    assert label == 2  # right hand wave -> left hand wave


def test_augment_is_seedable_and_only_where_configured(tmp_path):
    g = frame_dataset("gesture-sim", "train", 4, tmp_path, limit=6, augment=True)
    n = frame_dataset("nmnist-sim", "train", 4, tmp_path, limit=2, augment=True)
    assert n.flip_label is None and n.roll_px == 0
    assert torch.equal(n[0][0], frame_dataset("nmnist-sim", "train", 4, tmp_path, limit=2)[0][0])
    torch.manual_seed(3)
    first = [g[i] for i in range(len(g))]
    torch.manual_seed(3)
    second = [g[i] for i in range(len(g))]
    assert all(torch.equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(first, second))
    plain = frame_dataset("gesture-sim", "train", 4, tmp_path, limit=6)
    for (x, y), (xp, yp) in zip(first, (plain[i] for i in range(len(plain)))):
        assert y in (yp, FLIP_LABEL[yp]) and x.sum() == xp.sum()  # flip/roll move events, never drop them
    gen = torch.Generator().manual_seed(0)
    labels = {augment_frames(torch.zeros(1, 2, 8, 8), 3, FLIP_LABEL, 2, gen)[1] for _ in range(40)}
    assert labels == {3, 6}


def test_thin_keeps_a_binomial_share_of_each_count():
    gen = torch.Generator().manual_seed(0)
    counts = torch.full((2, 2, 50, 50), 4.0)
    kept = thin(counts, 0.25, gen)
    assert torch.all((kept >= 0) & (kept <= counts)) and torch.equal(kept, kept.round())
    assert abs(kept.mean().item() - 1.0) < 0.05  # 20,000 draws of Binomial(4, 0.25)
    assert torch.equal(thin(counts, 1.0, gen), counts) and thin(counts, 0.0, gen).sum() == 0


def test_recipe_roll_and_thinning_reach_the_training_frames(tmp_path):
    plain = frame_dataset("nmnist-sim", "train", 4, tmp_path, limit=4)
    aug = frame_dataset("nmnist-sim", "train", 4, tmp_path, limit=4, augment=True, roll_px=2, keep_min=0.5)
    assert aug.roll_px == 2 and aug.keep_min == 0.5
    torch.manual_seed(0)
    total = sum(aug[i][0].sum().item() for i in range(len(aug)))
    full = sum(plain[i][0].sum().item() for i in range(len(plain)))
    assert 0.5 * full < total < 0.95 * full  # thinned to a fraction drawn from [0.5, 1]


def test_cli_info_and_prepare(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["info", "nmnist-sim", "--data-dir", str(tmp_path), "--json", "--stats-samples", "4"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["counts"] == {"train": 8000, "test": 2000} and info["sensor_size"] == [34, 34, 2]
    st = info["statistics"]
    assert st["n_samples"] == 4 and st["n_real"] == 4 and st["reference"] == "nmnist-real800"
    assert set(st["simulated"]) == set(st["real"]) == set(st["ks"]) == set(st["checks"])
    assert {"events", "events_per_saccade", "on_fraction", "saccade_peak_ms", "x_std", "pixel_interval_log10_us",
            "polarity_overlap", "fast_reversals", "isolated_fraction"} <= set(st["ks"])
    assert all(0 <= d <= 1 for d in st["ks"].values())
    res = runner.invoke(app, ["info", "cifar10dvs", "--data-dir", str(tmp_path), "--json"])
    assert res.exit_code == 1 and "cifar10dvs files not found under --data-dir" in str(res.exception)
    res = runner.invoke(app, ["prepare", "nmnist-sim", "--data-dir", str(tmp_path), "--limit", "3", "--frames", "4", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["splits"]["train"]["samples"] == 3
    assert all(Path(s["frame_cache"], "frames.npy").is_file() for s in out["splits"].values())
    res = runner.invoke(app, ["prepare", "nmnist", "--data-dir", str(tmp_path)])
    assert isinstance(res.exception, DataError) and "NMNIST" in str(res.exception)
