"""The event-driven simulator against hand-computed tiny layouts, the pure-Python reference and sinabs."""

import numpy as np
import pytest
import sinabs.layers as sl
import torch
from sinabs.activation import MembraneSubtract, MultiSpike

from speck_mtt.errors import DataError, SpeckMttError
from speck_mtt.eventsim import (UnsortedEventsWarning, build, compile_artifact, simulate, simulate_many)
from speck_mtt.eventsim.reference import simulate_reference

EV = [("x", "<i2"), ("y", "<i2"), ("p", "<i1"), ("t", "<i8")]


def events(*xyp, t=None) -> np.ndarray:
    ev = np.zeros(len(xyp), dtype=EV)
    for i, (x, y, p) in enumerate(xyp):
        ev[i] = (x, y, p, i if t is None else t[i])
    return ev


def random_events(rng, n, w, h, c=2) -> np.ndarray:
    ev = np.zeros(n, dtype=EV)
    ev["x"], ev["y"], ev["p"] = rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, c, n)
    ev["t"] = np.sort(rng.integers(0, 10 * n, n))
    return ev


def one_layer(weight, shape, th, lo, **kw):
    return build.artifact([build.layer(weight, shape, th, lo, **kw)], shape)


def test_conv_stride_padding_by_hand():
    # 1x4x4 input, 3x3 kernel, stride 2, padding 1 -> 2x2 output. An event at (y=1, x=1) reaches
    # output (0,0) through w[2,2], (0,1) through w[2,0], (1,0) through w[0,2], (1,1) through w[0,0].
    w = torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=torch.float32).reshape(1, 1, 3, 3)
    art = one_layer(w, [1, 4, 4], 10, -5, stride=(2, 2), padding=(1, 1))
    r = simulate(art, events((1, 1, 0), (1, 1, 0), (1, 1, 0)))
    # (0,0): 9, 18->8 spike, 17->7 spike; (0,1): 7, 14->4 spike, 11->1 spike; (1,0): 3,6,9; (1,1): 1,2,3
    np.testing.assert_array_equal(r.states[0][0], [[7, 1], [9, 3]])
    assert r.counts.tolist() == [4]
    assert r.synops.tolist() == [12]
    # an event at (0, 0) reaches only output (0,0) through the kernel centre w[1,1] = 5
    r = simulate(art, events((0, 0, 0)))
    np.testing.assert_array_equal(r.states[0][0], [[5, 0], [0, 0]])
    assert r.synops.tolist() == [1]


def test_one_spike_per_event_and_low_clamp():
    art = one_layer(torch.tensor([25.0, -20.0]).reshape(1, 2, 1, 1), [2, 1, 1], 10, -5)
    r = simulate(art, events((0, 0, 0)))
    assert r.counts.tolist() == [1] and r.states[0].item() == 15  # stays above threshold, silent
    r = simulate(art, events((0, 0, 0), (0, 0, 0)))
    assert r.counts.tolist() == [2] and r.states[0].item() == 30
    # -20 clamps at -5; +25 -> 20: one spike -> 10 (without the clamp: -20 + 25 = 5, no spike)
    r = simulate(art, events((0, 0, 1), (0, 0, 0)))
    assert r.counts.tolist() == [1] and r.states[0].item() == 10


def test_channel_row_column_order_of_spikes():
    # layer 0 (2 channels, 1x2 map) spikes at both neurons of each channel for an event at x=1;
    # layer 1 sums them into one neuron with a clamp, so its final state tells the spike order.
    l0 = build.layer(torch.full((2, 1, 1, 2), 10.0), [1, 1, 3], 10, -100)
    w1 = torch.tensor([[20.0, -50.0], [40.0, 0.0]]).reshape(1, 2, 1, 2)  # [channel, column]
    l1 = build.layer(w1, [2, 1, 2], 100, -10)
    art = build.artifact(build.chain([l0, l1]), [1, 1, 3])
    r = simulate(art, events((1, 0, 0)))
    assert r.channel_counts[0].tolist() == [2, 2]
    # (c0,x0) (c0,x1) (c1,x0) (c1,x1): 20, -30 -> -10, 30, 30. Column-major order would give 10,
    # columns descending 50.
    assert r.states[1].item() == 30
    assert simulate_reference(art, events((1, 0, 0)))["membranes"].tolist() == [30]


def test_sum_pool_and_input_pool():
    # input 1x4x4 pooled by 2 -> 1x2x2; identity 1x1 conv (threshold 1) pooled 2x2 -> 1x1; counter
    l0 = build.layer(torch.ones(1, 1, 1, 1), [1, 2, 2], 1, 0, pool=(2, 2))
    l1 = build.layer(torch.ones(1, 1, 1, 1), [1, 1, 1], 3, 0)
    art = build.artifact(build.chain([l0, l1]), [1, 4, 4], input_pool=2)
    ev = events((0, 0, 0), (3, 0, 0), (0, 3, 0), (3, 3, 0), (1, 1, 0), (2, 2, 0))
    r = simulate(art, ev)
    assert r.channel_counts[0].tolist() == [6]  # every event reaches one layer-0 neuron
    np.testing.assert_array_equal(r.states[0][0], 0)
    assert r.counts.tolist() == [2] and r.states[1].item() == 0  # 6 pooled spikes, threshold 3


def test_pool_drops_border_of_odd_map():
    l0 = build.layer(torch.ones(1, 1, 1, 1), [1, 1, 3], 1, 0, pool=(1, 2))
    l1 = build.layer(torch.ones(1, 1, 1, 1), [1, 1, 1], 1, 0)
    art = build.artifact(build.chain([l0, l1]), [1, 1, 3])
    r = simulate(art, events((0, 0, 0), (1, 0, 0), (2, 0, 0)))
    assert r.channel_counts[0].tolist() == [3] and r.counts.tolist() == [2]


def test_linear_head_as_conv():
    # a Linear(1*2*2 -> 3) is a conv whose 2x2 kernel covers the whole map: output 1x1
    w = torch.arange(12, dtype=torch.float32).reshape(3, 1, 2, 2)  # class k, position (y, x): 4k + 2y + x
    art = build.artifact([build.layer(w, [1, 2, 2], 8, -8, readout="membrane")], [1, 2, 2], head="membrane")
    r = simulate(art, events((1, 1, 0), (0, 1, 0)))
    # class 0: 3 + 2 = 5; class 1: 7 + 6 = 13 -> spike at 7+6... 7 (<8) then 13 -> one spike, 5
    # class 2: 11 -> spike, 3; +10 -> 13 -> spike, 5
    assert r.counts.tolist() == [0, 1, 2]
    assert r.membranes.tolist() == [5, 13, 21]  # accumulated input: final state + spikes * threshold
    assert r.states[0].ravel().tolist() == [5, 5, 5]
    assert r.synops.tolist() == [6]


def test_layerwise_equals_event_by_event_and_reference():
    rng = np.random.default_rng(1)
    def w(*s): return torch.tensor(rng.integers(-6, 10, s), dtype=torch.float32)
    layers = build.chain([
        build.layer(w(4, 2, 3, 3), [2, 12, 12], 12, -12, padding=(1, 1), pool=(2, 2)),
        build.layer(w(6, 4, 3, 3), [4, 6, 6], 15, -9, stride=(2, 2), padding=(1, 1)),
        build.layer(w(5, 6, 3, 3), [6, 3, 3], 10, -10),
    ])
    art = build.artifact(layers, [2, 24, 24], input_pool=2)
    ev = random_events(rng, 400, 24, 24)
    a, b = simulate(art, ev), simulate(art, ev, layerwise=True)
    ref = simulate_reference(art, ev)
    assert a.layer_spikes.min() > 0
    for x, y in zip(a.channel_counts, b.channel_counts):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(a.states, b.states):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.counts, ref["counts"])
    np.testing.assert_array_equal(a.membranes, ref["membranes"])
    assert a.synops.sum() == ref["synops"]


def test_fan_out_reaches_every_destination():
    # layer 0 -> layers 1 and 2, layer 1 -> layer 2; weights below threshold make counts order-free
    l0 = build.layer(torch.full((1, 1, 1, 1), 5.0), [1, 1, 1], 5, 0, destinations=[1, 2])
    l1 = build.layer(torch.full((1, 1, 1, 1), 3.0), [1, 1, 1], 6, 0, destinations=[2])
    l2 = build.layer(torch.tensor([1.0]).reshape(1, 1, 1, 1), [1, 1, 1], 100, 0, readout="membrane")
    art = build.artifact([l0, l1, l2], [1, 1, 1], head="membrane")
    r = simulate(art, events(*[(0, 0, 0)] * 8))
    assert r.channel_counts[0].tolist() == [8] and r.channel_counts[1].tolist() == [4]
    assert r.membranes.tolist() == [12]  # 8 direct + 4 through layer 1
    assert simulate_reference(art, events(*[(0, 0, 0)] * 8))["membranes"].tolist() == [12]


def test_agrees_with_time_stepped_sinabs_below_threshold():
    # every |weight| < threshold and one event per time step: at most one spike per step in
    # sinabs' multistep IF too, so both must give the same counts and states.
    rng = np.random.default_rng(2)
    th, lo = 16.0, -8.0
    w = torch.tensor(rng.integers(-15, 16, (3, 2, 3, 3)), dtype=torch.float32)
    art = one_layer(w, [2, 6, 6], th, lo, stride=(1, 1), padding=(1, 1))
    ev = random_events(rng, 300, 6, 6)
    r = simulate(art, ev)

    conv = torch.nn.Conv2d(2, 3, 3, padding=1, bias=False)
    conv.weight.data = w
    neuron = sl.IAFSqueeze(batch_size=1, spike_threshold=th, min_v_mem=lo, spike_fn=MultiSpike,
                           reset_fn=MembraneSubtract())
    frames = torch.zeros(len(ev), 2, 6, 6)
    p, y, x = (torch.from_numpy(ev[k].astype(np.int64)) for k in ("p", "y", "x"))
    frames[torch.arange(len(ev)), p, y, x] = 1
    with torch.no_grad():
        out = neuron(conv(frames))
    assert out.max() <= 1
    np.testing.assert_array_equal(out.sum((0, 2, 3)).numpy(), r.counts)
    np.testing.assert_array_equal(neuron.v_mem[0].numpy(), r.states[0])


def test_float_mode_uses_float_layers():
    rng = np.random.default_rng(3)
    w = torch.tensor(rng.integers(-8, 12, (4, 2, 3, 3)), dtype=torch.float32)
    layers = [build.layer(w, [2, 8, 8], 16, -16, padding=(1, 1))]
    floats = [build.layer(w / 16, [2, 8, 8], 1.0, -1.0, padding=(1, 1))]
    art = build.artifact(layers, [2, 8, 8], float_layers=floats)
    ev = random_events(rng, 200, 8, 8)
    a, b = simulate(art, ev), simulate(art, ev, float_mode=True)
    assert b.states[0].dtype == np.float64 and a.states[0].dtype == np.int64
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_allclose(a.states[0] / 16, b.states[0])


def test_bad_input():
    art = one_layer(torch.ones(1, 2, 1, 1), [2, 4, 4], 2, 0)
    with pytest.raises(DataError, match="outside the 4x4 sensor"):
        simulate(art, events((4, 0, 0)))
    with pytest.raises(DataError, match="outside"):
        simulate(art, events((0, 0, 2)))
    with pytest.warns(UserWarning, match="dropped"):
        assert simulate(art, events((4, 0, 0), (0, 0, 0), (0, 0, 1)), outside="drop").counts.tolist() == [1]
    # p0 adds 2, p1 subtracts 2, clamp at 0, threshold 3: only the stable time order
    # (p1 t5) (p0 t5) (p0 t9) gives 0, 2, 4 -> one spike, state 1
    order = one_layer(torch.tensor([2.0, -2.0]).reshape(1, 2, 1, 1), [2, 1, 1], 3, 0)
    with pytest.warns(UnsortedEventsWarning):
        r = simulate(order, events((0, 0, 0), (0, 0, 1), (0, 0, 0), t=[9, 5, 5]))
    assert r.counts.tolist() == [1] and r.states[0].item() == 1
    empty = simulate(art, events())
    assert empty.counts.tolist() == [0] and empty.synops.sum() == 0
    with pytest.raises(DataError, match="fields x, y, p"):
        simulate(art, np.zeros((3, 4)))


def test_bad_layout():
    l0 = build.layer(torch.ones(2, 1, 3, 3), [1, 8, 8], 1, 0, pool=(2, 2))
    l1 = build.layer(torch.ones(1, 2, 3, 3), [2, 8, 8], 1, 0)  # should be [2, 4, 4]
    with pytest.raises(SpeckMttError, match="does not match the input_shape"):
        compile_artifact(build.artifact(build.chain([l0, l1]), [1, 8, 8]))
    bad = build.layer(torch.ones(1, 1, 3, 3), [1, 8, 8], 1, 0)
    bad["output_shape"] = [1, 8, 8]
    with pytest.raises(SpeckMttError, match="shapes disagree"):
        compile_artifact(build.artifact([bad], [1, 8, 8]))
    with pytest.raises(SpeckMttError, match="pooled by 2"):
        compile_artifact(build.artifact([build.layer(torch.ones(1, 1, 1, 1), [1, 8, 8], 1, 0)], [1, 8, 8],
                                        input_pool=2))
    frac = build.layer(torch.full((1, 1, 1, 1), 0.5), [1, 2, 2], 1, 0)
    with pytest.raises(SpeckMttError, match="non-integer"):
        compile_artifact(build.artifact([frac], [1, 2, 2]))


def test_many_equals_single_and_streams():
    rng = np.random.default_rng(4)
    w = torch.tensor(rng.integers(-6, 10, (4, 2, 3, 3)), dtype=torch.float32)
    art = build.artifact(build.chain([build.layer(w, [2, 8, 8], 12, -12, padding=(1, 1), pool=(2, 2)),
                                      build.layer(w[:3, :].repeat(1, 2, 1, 1), [4, 4, 4], 12, -12, padding=(1, 1))]),
                         [2, 8, 8])
    samples = [(random_events(rng, int(n), 8, 8), i % 3) for i, n in enumerate(rng.integers(0, 150, 11))]
    net = compile_artifact(art)
    res = simulate_many(net, iter(samples), workers=2, chunk_size=4)
    assert len(res) == 11 and res.labels.tolist() == [i % 3 for i in range(11)]
    assert res.sample_ids.tolist() == list(range(11))
    for i, (ev, _) in enumerate(samples):
        one = simulate(net, ev)
        np.testing.assert_array_equal(res.counts[i], one.counts)
        np.testing.assert_array_equal(res.membranes[i], one.membranes)
        np.testing.assert_array_equal(res.synops[i], one.synops)
        np.testing.assert_array_equal(res.layer_spikes[i], one.layer_spikes)
        assert res.n_events[i] == len(ev)


def test_floor_hits_and_held_spikes_are_counted():
    """The counters of the chip rule, by hand (one neuron: w = +25 on ON, -20 on OFF, theta 10, floor -5)."""
    art = one_layer(torch.tensor([25.0, -20.0]).reshape(1, 2, 1, 1), [2, 1, 1], 10, -5)
    # OFF: -20 -> floored at -5 (hit); ON: 20 -> spike -> 10, still >= 10 (held); ON: 35 -> 25 (held)
    r = simulate(art, events((0, 0, 1), (0, 0, 0), (0, 0, 0)))
    assert r.counts.tolist() == [2] and r.states[0].item() == 25
    assert {k: v.tolist() for k, v in r.events.items()} == {"floor_hits": [1], "held_spikes": [2], "top_saturations": [0]}
    ref = simulate_reference(art, events((0, 0, 1), (0, 0, 0), (0, 0, 0)))
    assert {k: v.tolist() for k, v in ref["events"].items()} == {k: v.tolist() for k, v in r.events.items()}
    # a deep floor keeps the inhibition: -20 + 25 = 5, no spike and no floor hit
    deep = simulate(one_layer(torch.tensor([25.0, -20.0]).reshape(1, 2, 1, 1), [2, 1, 1], 10, -100),
                    events((0, 0, 1), (0, 0, 0)))
    assert deep.counts.tolist() == [0] and deep.states[0].item() == 5 and deep.events["floor_hits"].tolist() == [0]


def test_state_saturates_at_the_16_bit_register():
    """A discretized layout holds states in 16 bits: +127 per event reaches 32,766 after 258 events;
    the 259th saturates at 32,767 = theta_high and fires, 41 more leave 41 * 127. Downwards it stops
    at -32,768. A float layout of scale 2 stops at 32,767 / 2; an unscaled (hand-made) float layout
    is unbounded."""
    from speck_mtt.eventsim.kernels import STATE_MAX, STATE_MIN

    n = 300  # 300 * 127 = 38,100 > 32,767
    ev = events(*[(0, 0, 0)] * n)
    art = one_layer(torch.tensor([127.0]).reshape(1, 1, 1, 1), [1, 1, 1], STATE_MAX, STATE_MIN, readout="membrane")
    r = simulate(art, ev)
    assert r.states[0].item() == 41 * 127 and r.counts.tolist() == [1] and r.events["top_saturations"].item() == 1
    ref = simulate_reference(art, ev)
    assert ref["counts"].tolist() == [1] and ref["events"]["top_saturations"].tolist() == [1]
    flt = dict(art["layers"][0], scale=2.0)
    r = simulate(build.artifact([flt], [1, 1, 1], discretized=False), ev, float_mode=True)
    assert r.states[0].item() == STATE_MAX / 2 and r.events["top_saturations"].item() == n - 129  # 129 * 127 < 16383.5
    unscaled = {k: v for k, v in flt.items() if k != "scale"}
    free = simulate(build.artifact([dict(unscaled, threshold_high=1e9)], [1, 1, 1], discretized=False), ev)
    assert free.states[0].item() == n * 127 and free.events["top_saturations"].item() == 0


def test_a_floor_at_or_beyond_the_register_bottom_counts_floor_hits_not_saturations():
    """-127 per event: the state reaches -32,766 after 258 events. With the floor at the register's
    -32,768 (a deep floor clipped to 16 bits, as VGGSNN's deep layers have) each further event is
    a floor hit and no saturation; a floor inside the register (-32,000: 252 * 127 passes it)
    counts the same way; a float layer of scale 2 whose floor (-20,000) lies beyond its register
    (-16,384) stops at the register's bottom, again as floor hits. Simulator and reference agree."""
    from speck_mtt.eventsim.kernels import STATE_MAX, STATE_MIN

    n = 300
    ev = events(*[(0, 0, 0)] * n)
    w = torch.tensor([-127.0]).reshape(1, 1, 1, 1)
    for floor, state, hits in ((STATE_MIN, STATE_MIN, n - 258), (-32_000, -32_000, n - 251)):
        art = one_layer(w, [1, 1, 1], STATE_MAX, floor)
        r, ref = simulate(art, ev), simulate_reference(art, ev)
        assert r.states[0].item() == state
        assert {k: v.tolist() for k, v in r.events.items()} == {"floor_hits": [hits], "held_spikes": [0],
                                                                 "top_saturations": [0]}
        assert {k: v.tolist() for k, v in ref["events"].items()} == {k: v.tolist() for k, v in r.events.items()}
    flt = dict(one_layer(w, [1, 1, 1], STATE_MAX, -20_000)["layers"][0], scale=2.0)
    r = simulate(build.artifact([flt], [1, 1, 1], discretized=False), ev, float_mode=True)
    assert r.states[0].item() == STATE_MIN / 2 and r.events["floor_hits"].item() == n - 129  # 129 * 127 < 16384
    assert r.events["top_saturations"].item() == 0


def test_quiet_layers_skip_the_range_and_held_checks_only_where_proved():
    """A layer whose sums provably stay in the register and below 2 theta_high runs without the
    range clamp and the held check (kernels._quiet_layers): by hand at both edges, and the compiled
    simulator equals the reference on either side of the held edge."""
    from speck_mtt.eventsim import kernels as K

    def quiet(weights, th, lo=-5):
        net = compile_artifact(one_layer(torch.tensor(weights, dtype=torch.float32).reshape(1, -1, 1, 1),
                                         [len(weights), 1, 1], th, lo))
        return bool(K._quiet_layers(net.lay, net.weights, net.th_hi, net.th_lo, net.vb,
                                    np.zeros(net.n_state, net.vb.dtype))[0])

    assert quiet([9.0, -9.0], 10) and not quiet([11.0, -2.0], 10)  # 10 + 9 < 20 <= 10 + 11
    assert quiet([127.0], K.STATE_MAX - 127) and not quiet([127.0], K.STATE_MAX - 126)  # top of the register
    assert quiet([-127.0], 10, K.STATE_MIN + 127) and not quiet([-127.0], 10, K.STATE_MIN + 126)  # bottom
    rng = np.random.default_rng(3)
    ev = random_events(rng, 400, 1, 1)
    for weights, held in (([9.0, -9.0], False), ([11.0, -2.0], True)):
        art = one_layer(torch.tensor(weights).reshape(1, 2, 1, 1), [2, 1, 1], 10, -5)
        fast, ref = simulate(art, ev), simulate_reference(art, ev)
        assert fast.counts.tolist() == ref["counts"].tolist() and fast.membranes.tolist() == ref["membranes"].tolist()
        assert {k: v.tolist() for k, v in fast.events.items()} == {k: v.tolist() for k, v in ref["events"].items()}
        assert (fast.events["held_spikes"].item() > 0) == held and fast.events["floor_hits"].item() > 0
