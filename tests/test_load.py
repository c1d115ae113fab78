"""SynOps/s per core (eventsim.load) on a hand-computed event stream, through the real kernels."""

import numpy as np
import pytest

from speck_mtt.eventsim import compile_artifact, simulate, simulate_many
from speck_mtt.eventsim.build import artifact, chain, layer
from speck_mtt.eventsim.load import LoadSpec, load_curve, per_event, sample_load, summarize

EV = np.dtype([("x", "<i2"), ("y", "<i2"), ("p", "<i1"), ("t", "<i8")])
TIMES = [0, 100, 200, 1500, 1600]


def _net():
    """Layer 0: a 1x1 kernel, weights 2 and 1 into two channels at threshold 2: every event costs 2
    SynOps and fires channel 0, channel 1 fires every second event. Layer 1 takes both channels
    (1x1, one output that never fires): 1 SynOp after odd events, 2 after even ones."""
    first = layer([[[[2.0]]], [[[1.0]]]], (1, 4, 4), 2.0, -2.0)
    second = layer([[[[1.0]], [[1.0]]]], (2, 4, 4), 1000.0, -1000.0)
    return compile_artifact(artifact(chain([first, second]), (1, 4, 4)))


def _events():
    return np.array([(1, 1, 0, t) for t in TIMES], EV)


def test_trace_holds_each_events_synops_per_layer():
    result = simulate(_net(), _events(), trace=True)
    assert result.times_us.tolist() == TIMES
    assert per_event(result.trace).tolist() == [[2, 1], [2, 2], [2, 1], [2, 2], [2, 1]]
    assert result.trace[-1].tolist() == result.synops.tolist()


def test_peak_and_time_above_budget_by_hand():
    result = simulate(_net(), _events(), trace=True)
    # window (t - 1 ms, t]: layer 0 holds 3 events (6 SynOps) at t = 200 us, layer 1 holds 1 + 2 + 1
    got = sample_load(result.times_us, result.trace, LoadSpec(1000.0, budget=3500.0))
    assert got["peak"].tolist() == [6000.0, 4000.0]
    assert got["span_us"] == 2600.0  # from the first event to the last one + W
    # layer 0 above 3500/s on [100, 1100) and [1600, 2500); layer 1 on [200, 1000)
    assert got["above_us"].tolist() == [1900.0, 800.0]
    breaks, load = load_curve(result.times_us, result.trace, 1000.0)
    assert breaks.tolist() == [0, 100, 200, 1000, 1100, 1200, 1500, 1600, 2500, 2600]
    assert load[:, 0].tolist() == [2000, 4000, 6000, 4000, 2000, 0, 2000, 4000, 2000]
    assert sample_load(result.times_us, result.trace, LoadSpec(100.0))["peak"].tolist() == [20000.0, 20000.0]


def test_batch_load_equals_the_single_sample_trace_and_changes_nothing_else():
    net = _net()
    rng = np.random.default_rng(0)
    samples = []
    for i in range(5):
        ev = np.zeros(40, EV)
        ev["x"], ev["y"] = rng.integers(0, 4, 40), rng.integers(0, 4, 40)
        ev["t"] = np.sort(rng.integers(0, 5000, 40))
        samples.append((ev, 0))
    spec = LoadSpec(500.0, budget=5000.0)
    plain = simulate_many(net, samples, workers=1, chunk_size=2)
    loaded = simulate_many(net, samples, workers=1, chunk_size=2, load=spec)
    assert plain.load == {} and np.array_equal(plain.channel_counts, loaded.channel_counts)
    assert np.array_equal(plain.synops, loaded.synops)
    for i, (ev, _) in enumerate(samples):
        one = simulate(net, ev, trace=True)
        expect = sample_load(one.times_us, one.trace, spec)
        assert loaded.load["peak"][i].tolist() == expect["peak"].tolist()
        assert loaded.load["above_us"][i].tolist() == expect["above_us"].tolist()
    summary = summarize(loaded.load["peak"], loaded.load["above_us"], loaded.load["span_us"], loaded.synops,
                        [3, 5], spec)
    assert [row["core"] for row in summary["cores"]] == [3, 5]
    assert summary["cores"][0]["peak_synops_per_s"] == loaded.load["peak"][:, 0].max()
    share = loaded.load["above_us"][:, 1].sum() / loaded.load["span_us"].sum()
    assert summary["cores"][1]["share_above_budget"] == pytest.approx(share)


def test_layerwise_run_cannot_trace():
    with pytest.raises(ValueError, match="event-by-event"):
        simulate(_net(), _events(), layerwise=True, trace=True)
