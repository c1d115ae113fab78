"""On a real Speck2e devkit: deploy, one event in -> the expected output, a small N-MNIST-style
batch against the simulator (SD bound), and chip-vs-chip SD of two identical runs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from speck_mtt.eventsim import compile_artifact, simulate, spike_difference
from speck_mtt.eventsim.network import load_artifact
from speck_mtt.eventsim.recording import compare_recordings
from speck_mtt.speck.devkit import deploy_to_devkit, measure_on_devkit

pytestmark = pytest.mark.hardware

DEVICE = os.environ.get("SPECK_MTT_DEVICE")  # default speck2edevkit:0

N_SAMPLES = int(os.environ.get("SPECK_MTT_HW_SAMPLES", "20"))
SD_BOUND = float(os.environ.get("SPECK_MTT_HW_SD_BOUND", "0.10"))
EV = np.dtype([("x", "<i2"), ("y", "<i2"), ("p", "<i1"), ("t", "<i8")])


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    from speck_mtt.data import event_dataset

    data = event_dataset("nmnist-sim", "test", data_dir=tmp_path_factory.mktemp("data"), limit=N_SAMPLES)
    return [data[i] for i in range(len(data))]


def test_deploy_uses_the_artifact_cores(deploy_dir):
    summary = deploy_to_devkit(deploy_dir, DEVICE)
    cores = [layer["core"] for layer in load_artifact(deploy_dir)["layers"]]
    assert list(summary["cores"].values()) == cores
    assert summary["input_core"] == cores[0] and summary["output_core"] == cores[-1]


@pytest.mark.skipif("SPECK_MTT_HW_CHECKPOINT" in os.environ, reason="the one-event test needs the wired net")
def test_one_event_gives_the_expected_output(deploy_dir, tmp_path):
    samples = [(np.array([(0, 0, 0, 0)], EV), 3),  # reaches the output: one spike at class 3
               (np.array([(9, 17, 1, 0)], EV), 3),
               (np.array([(4, 4, 0, 0)], EV), 0)]  # stops at the stride-2 layer: no output
    rec = measure_on_devkit(deploy_dir, samples, record=tmp_path / "one.npz", device=DEVICE)
    expected = np.zeros((3, 10), np.int64)
    expected[0, 3] = expected[1, 3] = 1
    assert rec.counts.tolist() == expected.tolist()
    artifact = load_artifact(deploy_dir)
    assert rec.counts.tolist() == [simulate(artifact, ev).counts.tolist() for ev, _ in samples]


def test_batch_matches_the_simulator(deploy_dir, batch, tmp_path):
    rec = measure_on_devkit(deploy_dir, batch, record=tmp_path / "chip.npz", device=DEVICE)
    net = compile_artifact(load_artifact(deploy_dir))
    sim = np.stack([simulate(net, events).counts for events, _ in batch])
    assert sim.sum() > 0, "the simulator sees no output spikes: the SD would be undefined"
    sd = spike_difference(rec.counts, sim)
    print(f"chip vs simulator on {len(batch)} samples: SD {sd.pooled:.2%} (per-sample mean {sd.per_sample_mean:.2%})")
    assert sd.pooled <= SD_BOUND


def test_repeated_runs_chip_vs_chip(deploy_dir, batch, tmp_path):
    first = measure_on_devkit(deploy_dir, batch, record=tmp_path / "a.npz", device=DEVICE)
    second = measure_on_devkit(deploy_dir, batch, record=tmp_path / "b.npz", device=DEVICE)
    sd, n = compare_recordings(second, first)
    print(f"chip vs chip on {n} samples: SD {sd.pooled:.2%} (per-sample mean {sd.per_sample_mean:.2%})")
    assert n == len(batch) and np.isfinite(sd.pooled) and sd.pooled <= SD_BOUND
