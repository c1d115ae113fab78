"""The compiled simulator equals the per-event pure-Python reference on a VGGSNN-shaped network:
its eight 3x3 convolutions, three 2x2 sum poolings, input pooling by 4 from a 128x128 sensor and the
membrane-voting linear head, with wide layers (up to 512 channels, where spikes are gathered 8 flags
per word) and narrow ones (10 channels), at an activity that reaches every layer and hits the
floor and the 16-bit register."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speck_mtt.eventsim import build, compile_artifact, simulate
from speck_mtt.eventsim.reference import simulate_reference

EV = [("x", "<i2"), ("y", "<i2"), ("p", "<i1"), ("t", "<i8")]
# VGGSNN's structure at 16x16 after input pooling, channels narrowed so the pure-Python reference
# stays fast (its nested lists hold every weight) but still up to 512 wide
WIDTHS = [(2, 16), (16, 32), (32, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 512)]
POOL_AFTER = {1, 3, 5, 7}
LOW, HIGH = 50, 53
TH = [10, 60, 30, 12, 8, 6, 10, 4]  # per unit of fan-in: activity neither dies out nor explodes


def _vggsnn_like(rng: np.random.Generator) -> dict:
    layers, side = [], 16
    for i, (c_in, c_out) in enumerate(WIDTHS):
        w = rng.integers(-LOW, HIGH, (c_out, c_in, 3, 3))
        pool = (2, 2) if i in POOL_AFTER else (1, 1)
        # layer 0: weights above its threshold (held spikes), floor at the 16-bit limit; then floors at -1 threshold
        layers.append(build.layer(torch.tensor(w), [c_in, side, side], TH[i] * c_in, -32768 if i == 0 else -TH[i] * c_in,
                                  padding=(1, 1), pool=pool))
        side //= pool[0]
    w = rng.integers(-20, 20, (10, 512, 1, 1))
    layers.append(build.layer(torch.tensor(w), [512, side, side], 10**6, -10**6, readout="membrane"))
    return build.artifact(build.chain(layers), [2, 64, 64], input_pool=4, head="membrane", arch="vggsnn-like")


@pytest.mark.slow  # the pure-Python reference makes 5.2 M synaptic updates: 20-60 s on 2 shared cores
def test_compiled_equals_reference_on_a_vggsnn_shaped_net():
    rng = np.random.default_rng(16)
    art = _vggsnn_like(rng)
    n = 150
    ev = np.zeros(n, EV)
    ev["x"], ev["y"], ev["p"], ev["t"] = rng.integers(0, 64, n), rng.integers(0, 64, n), rng.integers(0, 2, n), np.arange(n)
    fast = simulate(compile_artifact(art), ev)
    ref = simulate_reference(art, ev)
    assert fast.layer_spikes[:-1].min() > 0 and fast.synops[-1] > 0, fast.layer_spikes  # activity reaches the head
    for layer, counts in enumerate(ref["layer_counts"]):
        np.testing.assert_array_equal(fast.channel_counts[layer], counts)
    np.testing.assert_array_equal(fast.membranes, ref["membranes"])
    assert fast.synops.sum() == ref["synops"]
    for key, per_layer in ref["events"].items():
        np.testing.assert_array_equal(fast.events[key], per_layer, err_msg=key)
    assert fast.events["floor_hits"].sum() > 0
