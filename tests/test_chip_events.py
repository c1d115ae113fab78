"""Device event tuples, readout counting and membrane reads, checked against sinabs and the simulator."""

import importlib

import numpy as np
import pytest

from speck_mtt.errors import DataError, SpeckMttError
from speck_mtt.eventsim import compile_artifact, prepare_events
from speck_mtt.models import build_model
from speck_mtt.chip.chip_events import (NEURON_VALUE, OUTPUT_SPIKE, chip_io, count_spikes, membranes,
                                         neuron_address, neuron_addresses, remaining, to_device_events)
from speck_mtt.chip.layout import layout_model
from speck_mtt.chip.samna_guard import dynapcnn

EV = np.dtype([("x", "<i2"), ("y", "<i2"), ("p", "<i1"), ("t", "<i8")])


@pytest.fixture(scope="module")
def nmnist_artifact():
    return layout_model(build_model("nmnist_3c1fc"), "speck2e").artifact


@pytest.fixture(scope="module")
def gesture_artifact():
    return layout_model(build_model("gesture_4c2fc", bn=False), "speck2e").artifact


def _events(rows):
    return np.array(rows, EV)


def test_chip_io_if_head(nmnist_artifact):
    io = chip_io(nmnist_artifact)
    cores = [layer["core"] for layer in nmnist_artifact["layers"]]
    assert io.input_core == cores[0] and io.output_core == cores[-1] == io.spiking_core
    assert io.readout == "spikes" and io.output_shape == (10, 1, 1) and io.input_pool == 1
    assert io.sensor_shape == (2, 34, 34) and io.spiking_layer == 3


def test_chip_io_membrane_head_records_the_layer_feeding_the_readout(gesture_artifact):
    io = chip_io(gesture_artifact)
    layers = gesture_artifact["layers"]
    assert io.readout == "membrane" and io.input_pool == 2 and io.sensor_shape == (2, 128, 128)
    assert io.spiking_layer == len(layers) - 2 and io.spiking_core == layers[-2]["core"]
    assert io.spiking_channels == 64 and io.output_shape == (11, 1, 1)
    assert io.threshold_high == layers[-1]["threshold_high"]


def test_sim_only_artifact_is_refused():
    artifact = layout_model(build_model("nmnist_3c1fc"), "sim").artifact
    with pytest.raises(SpeckMttError, match="--target speck2e"):
        chip_io(artifact)


def test_events_sorted_stably_rebased_and_routed(nmnist_artifact):
    io = chip_io(nmnist_artifact)
    ev = _events([(5, 6, 1, 1500), (1, 2, 0, 1000), (3, 4, 1, 1500), (7, 8, 0, 1200)])
    rows = to_device_events(ev, io)
    assert [tuple(int(v) for v in row) for row in rows.tolist()] == [(io.input_core, 0, 1, 2, 0), (io.input_core, 0, 7, 8, 200),
                               (io.input_core, 1, 5, 6, 500), (io.input_core, 1, 3, 4, 500)]


def test_input_pooling_matches_the_simulator(gesture_artifact):
    io = chip_io(gesture_artifact)
    rng = np.random.default_rng(0)
    n = 500
    ev = np.zeros(n, EV)
    ev["x"], ev["y"], ev["p"] = rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n)
    ev["t"] = np.sort(rng.integers(10_000, 20_000, n))
    rows = to_device_events(ev, io)
    xs, ys, ps = prepare_events(compile_artifact(gesture_artifact), ev)
    assert np.array_equal(rows["x"], xs) and np.array_equal(rows["y"], ys) and np.array_equal(rows["feature"], ps)
    assert rows["x"].max() < 64 and rows["timestamp"][0] == 0 and np.all(np.diff(rows["timestamp"].astype(int)) >= 0)


def test_merged_polarities_go_to_channel_zero(nmnist_artifact):
    io = chip_io(nmnist_artifact)
    merged = type(io)(**{**io.__dict__, "channels": 1})
    rows = to_device_events(_events([(1, 1, 1, 0), (2, 2, 0, 5)]), merged)
    assert rows["feature"].tolist() == [0, 0]


def test_bad_input_is_a_one_line_data_error(nmnist_artifact):
    io = chip_io(nmnist_artifact)
    with pytest.raises(DataError, match="outside the 34x34 sensor") as info:
        to_device_events(_events([(1, 1, 0, 0), (40, 1, 0, 3)]), io)
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="fields x, y, p, t"):
        to_device_events(np.zeros(3, [("x", "i2"), ("y", "i2")]), io)
    assert len(to_device_events(np.zeros(0, EV), io)) == 0


def test_count_spikes_only_counts_the_asked_core():
    spikes = np.array([(3, 1, 0, 0, 10), (3, 1, 0, 0, 12), (2, 1, 0, 0, 13), (3, 4, 0, 0, 20)], OUTPUT_SPIKE)
    assert count_spikes(spikes, 3, 5).tolist() == [0, 2, 0, 0, 1]
    assert count_spikes(spikes, 2, 3).tolist() == [0, 1, 0]
    assert count_spikes(np.zeros(0, OUTPUT_SPIKE), 3, 2).tolist() == [0, 0]
    with pytest.raises(SpeckMttError, match="feature 4"):
        count_spikes(spikes, 3, 4)


@pytest.mark.parametrize("shape", [(11, 1, 1), (10, 1, 1), (16, 4, 4), (8, 17, 17), (1, 4, 4)])
def test_neuron_address_is_sinabs_packing(shape):
    dynapcnn()  # the guard: sinabs' io imports samna
    io = importlib.import_module("sinabs.backend.dynapcnn.io")
    table = neuron_addresses(shape)
    assert len(table) == shape[0] * shape[1] * shape[2] and len(set(table[:, 3].tolist())) == len(table)
    for c, y, x, address in table[:: max(1, len(table) // 50)].tolist():
        assert address == io.calculate_neuron_address(x, y, c, shape) == neuron_address(c, y, x, shape)
        assert io.neuron_address_to_cxy(address, shape) == (c, x, y)


def test_membranes_sum_states_and_add_spikes_times_threshold():
    shape = (3, 2, 2)
    table = neuron_addresses(shape)
    states = np.arange(len(table)) - 4
    values = np.zeros(len(table) + 1, NEURON_VALUE)
    values["layer"][:-1], values["address"][:-1], values["neuron_state"][:-1] = 5, table[:, 3], states
    values[-1] = (4, 0, 999)  # another core: ignored
    spikes = np.array([0, 2, 0])
    score = membranes(values, 5, shape, spikes, 100.0)
    expected = [states[table[:, 0] == c].sum() + spikes[c] * 100.0 for c in range(3)]
    assert score.tolist() == expected
    with pytest.raises(SpeckMttError, match="were not read back"):
        membranes(values[1:], 5, shape, spikes, 100.0)


def test_remaining_keeps_order_and_skips_done():
    assert remaining([4, 0, 2, 7, 1], [0, 7]) == [4, 2, 1]
    assert remaining(range(3), []) == [0, 1, 2]
