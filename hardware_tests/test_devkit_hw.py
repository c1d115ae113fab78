"""On a real Speck2e devkit: tests that fail on a specific mistake of the devkit path (see README.md):
the applied core map and monitors read back, x vs y and ON vs OFF, the state reset, input
timestamps, the membrane readout of a 4C2FC head, the pooled input, the neuron rule itself
(subtract reset, the deployed floor, no leak); then a batch against the simulator (SD bound) and
chip vs chip. Every expectation on a wired net is also checked in the
simulator without hardware (tests/test_devkit.py), so a failure here points at the chip path."""

from __future__ import annotations

import os

import numpy as np
import pytest
from wired import OFF, ON, RULE_SAMPLES, events

from speck_mtt.contracts.sd import spike_difference
from speck_mtt.eventsim import compile_artifact, simulate
from speck_mtt.eventsim.network import load_artifact
from speck_mtt.contracts.recording import compare_recordings
from speck_mtt.chip.devkit import configuration_problems, measure_on_devkit, open_session

pytestmark = pytest.mark.hardware

DEVICE = os.environ.get("SPECK_MTT_DEVICE")  # default speck2edevkit:0
N_SAMPLES = int(os.environ.get("SPECK_MTT_HW_SAMPLES", "20"))
SD_BOUND = float(os.environ.get("SPECK_MTT_HW_SD_BOUND", "0.10"))

# 3C1FC wired net (wired.ROUTES): (17, 2) maps to y//8 = 0, x//8 = 2; (2, 17) to the transpose.
ROUTED = [(events((17, 2, ON, 0)), 1), (events((2, 17, ON, 0)), 2), (events((17, 2, OFF, 0)), 5),
          (events((2, 17, OFF, 0)), 6), (events((4, 4, ON, 0)), None)]  # (4, 4): stopped at the stride-2 conv


def _measure(deploy_dir, samples, tmp_path, name):
    return measure_on_devkit(deploy_dir, samples, record=tmp_path / f"{name}.npz", device=DEVICE)


def _one_hot(cls, n=10):
    row = [0] * n
    if cls is not None:
        row[cls] = 1
    return row


def _read_back_problems(deploy_dir):
    with open_session(deploy_dir, DEVICE) as session:
        return configuration_problems(session.applied_configuration(), load_artifact(deploy_dir))


@pytest.mark.parametrize("which", ["wired_dir", "gesture_dir"])
def test_applied_configuration_reads_back_as_the_artifact_asks(which, request):
    assert _read_back_problems(request.getfixturevalue(which)) == []


def test_deployed_floor_reads_back(rule_dir):
    assert _read_back_problems(rule_dir) == []  # threshold_low is -1 or -8 thresholds, as deployed


def test_x_y_and_polarity_reach_their_own_class(wired_dir, tmp_path):
    rec = _measure(wired_dir, [(ev, cls or 0) for ev, cls in ROUTED], tmp_path, "routes")
    assert rec.counts.tolist() == [_one_hot(cls) for _, cls in ROUTED]


def test_state_is_reset_between_samples(half_off_dir, tmp_path):
    once = events((17, 2, OFF, 0))  # half a threshold: nothing, unless the last sample's half is still there
    twice = events((17, 2, OFF, 0), (17, 2, OFF, 10))  # the path itself works: class 5
    rec = _measure(half_off_dir, [(once, 5), (once, 5), (twice, 5), (once, 5)], tmp_path, "reset")
    assert rec.counts.tolist() == [_one_hot(None), _one_hot(None), _one_hot(5), _one_hot(None)]


def test_an_event_at_one_second_is_answered_after_one_second(wired_dir, tmp_path):
    sample = events((4, 4, ON, 0), (17, 2, ON, 1_000_000))  # the first (stopped) event keeps t = 1 s after rebasing
    rec = _measure(wired_dir, [(sample, 1)], tmp_path, "timestamp")
    assert rec.counts.tolist() == [_one_hot(1)]
    first = int(rec.extras["first_output_us"][0])
    assert 1_000_000 <= first < 1_100_000, f"output at {first} us for an input at 1 s"


MEMBRANE_SAMPLES = [events((1, 33, ON, 0)), events((33, 1, ON, 0)), events((100, 36, OFF, 0), (65, 5, ON, 500))]
POOLED_SAMPLES = [events((0, 0, ON, 0)), events((1, 1, ON, 0)), events((2, 0, ON, 0)), events((124, 124, OFF, 0))]


def _membranes(deploy_dir, samples, tmp_path, name):
    rec = _measure(deploy_dir, [(ev, 0) for ev in samples], tmp_path, name)
    artifact = load_artifact(deploy_dir)
    expected = [simulate(artifact, ev).membranes.tolist() for ev in samples]
    return rec.extras["membranes"].tolist(), expected


def test_membrane_readout_of_a_4c2fc_head(gesture_dir, tmp_path):
    got, expected = _membranes(gesture_dir, MEMBRANE_SAMPLES, tmp_path, "membranes")
    assert got == expected


def test_pooled_input(gesture_dir, tmp_path):
    got, expected = _membranes(gesture_dir, POOLED_SAMPLES, tmp_path, "pooled")
    assert got[0] == got[1] != [0.0] * 11  # (0, 0) and (1, 1) are one pooled pixel
    assert got[2] == [0.0] * 11  # pooled x = 1: odd, stopped at the stride-2 conv
    assert got == expected


def _rule(rule_dir, name, tmp_path):
    """The chip's output counts for RULE_SAMPLES[name] and the simulator's (which also must hold)."""
    sample = RULE_SAMPLES[name]
    rec = _measure(rule_dir, [(sample, 1)], tmp_path, name)
    return rec, simulate(load_artifact(rule_dir), sample).counts.tolist()


def test_subtract_reset_keeps_the_remainder(rule_dir, tmp_path):
    rec, expected = _rule(rule_dir, "reset", tmp_path)
    assert expected == [0, 2] + [0] * 8  # reset to zero would give one spike
    assert rec.counts.tolist() == [expected]


def test_floor_is_the_deployed_one(rule_dir, tmp_path):
    rec, expected = _rule(rule_dir, "floor", tmp_path)
    floor = load_artifact(rule_dir)["floor"]
    assert expected == _one_hot(1 if floor == -1 else None)  # -1: clamped, then excited over threshold
    assert rec.counts.tolist() == [expected]


def test_no_leak_holds_a_state_for_a_second(rule_dir, tmp_path):
    rec, expected = _rule(rule_dir, "leak", tmp_path)
    assert expected == _one_hot(1)
    assert rec.counts.tolist() == [expected]
    first = int(rec.extras["first_output_us"][0])
    assert 1_000_000 <= first < 1_100_000, f"output at {first} us: the state moved before the second input at 1 s"


def test_batch_matches_the_simulator(deploy_dir, batch, tmp_path):
    rec = _measure(deploy_dir, batch, tmp_path, "chip")
    net = compile_artifact(load_artifact(deploy_dir))
    sim = np.stack([simulate(net, ev).counts for ev, _ in batch])
    assert sim.sum() > 0, "the simulator sees no output spikes: the SD would be undefined"
    sd = spike_difference(rec.counts, sim)
    print(f"chip vs simulator on {len(batch)} samples: SD {sd.pooled:.2%} (per-sample mean {sd.per_sample_mean:.2%})")
    assert sd.pooled <= SD_BOUND


def test_repeated_runs_chip_vs_chip(deploy_dir, batch, tmp_path):
    first = _measure(deploy_dir, batch, tmp_path, "a")
    second = _measure(deploy_dir, batch, tmp_path, "b")
    sd, n = compare_recordings(second, first)
    print(f"chip vs chip on {n} samples: SD {sd.pooled:.2%} (per-sample mean {sd.per_sample_mean:.2%})")
    assert n == len(batch) and np.isfinite(sd.pooled) and sd.pooled <= SD_BOUND


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    from speck_mtt.data import event_dataset

    data = event_dataset("nmnist-sim", "test", data_dir=tmp_path_factory.mktemp("data"), limit=N_SAMPLES)
    return [data[i] for i in range(len(data))]
