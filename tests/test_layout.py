import pytest
import torch
from torch import nn

import copy

from speck_mtt.models import build_model
from speck_mtt.models.neurons import set_floor
from speck_mtt.chip.layout import STATE_MAX, STATE_MIN, core_capacity, layout_model
from speck_mtt.chip.samna_guard import dynapcnn


def _sinabs_constraints():
    dynapcnn()  # the samna guard first: importing any sinabs.backend.dynapcnn module imports samna
    from sinabs.backend.dynapcnn.chip_factory import ChipFactory

    return ChipFactory("speck2e").get_config_builder().get_constraints()


@pytest.fixture(scope="module")
def nmnist():
    torch.manual_seed(0)
    model = build_model("nmnist_3c1fc")
    return model, layout_model(model, "speck2e")


@pytest.fixture(scope="module")
def gesture():
    torch.manual_seed(0)
    model = build_model("gesture_4c2fc", bn=False)
    return model, layout_model(model, "speck2e")


def test_capacity_is_sinabs_table_and_spec():
    table = _sinabs_constraints()
    assert core_capacity() == [{"kernel": c.kernel_memory, "neuron": c.neuron_memory, "bias": c.bias_memory}
                               for c in table]
    ki = 1024
    assert [c["kernel"] for c in core_capacity()] == [16 * ki] * 3 + [32 * ki] * 2 + [64 * ki] * 2 + [16 * ki] * 2
    assert [c["neuron"] for c in core_capacity()] == [64 * ki] * 3 + [32 * ki] * 2 + [16 * ki] * 4


@pytest.mark.parametrize("which", ["nmnist", "gesture"])
def test_speck2e_layout_assigns_distinct_fitting_cores(which, request):
    model, layout = request.getfixturevalue(which)
    art = layout.artifact
    cores = [layer["core"] for layer in art["layers"]]
    assert all(isinstance(c, int) for c in cores) and len(set(cores)) == len(cores)
    table = _sinabs_constraints()
    for layer, g, key in zip(art["layers"], layout.geometry, layout.keys):
        sinabs_layer = layout.network.dynapcnn_layers[key]
        assert g.memory == {k: int(v) for k, v in sinabs_layer.memory_summary().items()}
        assert table[layer["core"]].fits(sinabs_layer)
    assert art["fits_chip"] and art["fit_problems"] == []
    n_weight_layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())
    assert len(art["layers"]) == n_weight_layers


def test_memory_is_padded_to_powers_of_two(gesture):
    _, layout = gesture
    by_index = {g.index: g.memory for g in layout.geometry}
    assert by_index[0] == {"kernel": 2 * 16 * 8, "neuron": 8 * 32 * 32, "bias": 0}  # 3x3 -> 16, 8 -> 8
    assert by_index[4]["kernel"] == 32 * 16 * 64  # Linear(512,64) on 32x4x4: 4x4 kernel
    assert by_index[5] == {"kernel": 64 * 1 * 16, "neuron": 11, "bias": 0}  # 11 outputs -> 16


@pytest.mark.parametrize("which", ["nmnist", "gesture"])
def test_discretized_int_ranges_and_scale(which, request):
    _, layout = request.getfixturevalue(which)
    for layer, flt in zip(layout.artifact["layers"], layout.artifact["float_layers"]):
        w = layer["weight"]
        assert torch.equal(w, w.round()) and w.min() >= -128 and w.max() <= 127
        assert w.abs().max() >= 120  # the scale uses the int8 range
        for key in ("threshold_high", "threshold_low"):
            assert float(layer[key]).is_integer() and STATE_MIN <= layer[key] <= STATE_MAX
        assert torch.equal(torch.round(flt["weight"] * layer["scale"]), w)
        if layer["readout"] == "spikes":
            floor = layout.artifact["floor"]
            assert layer["threshold_high"] == round(layer["scale"] * flt["threshold_high"])
            assert layer["threshold_low"] == max(STATE_MIN, round(floor * layer["threshold_high"]))
            assert flt["threshold_low"] == pytest.approx(max(floor * flt["threshold_high"], STATE_MIN / layer["scale"]))


def test_discretization_is_sinabs_own_with_the_floor_set_after(nmnist):
    """Weights and threshold_high are sinabs' own discretization at a floor of -theta; the deep
    floor is then set in chip units, so it costs no weight precision."""
    model, layout = nmnist
    shallow = copy.deepcopy(model)
    set_floor(shallow, -1.0)
    net = dynapcnn().DynapcnnNetwork(shallow.to_sequential(), input_shape=model.input_shape, discretize=True,
                                     dvs_input=False)
    assert layout.artifact["floor"] == -8.0
    for layer, key in zip(layout.artifact["layers"], layout.keys):
        ref = net.dynapcnn_layers[key]
        assert torch.equal(layer["weight"], ref.conv_layer.weight)
        assert layer["threshold_high"] == float(ref.spk_layer.spike_threshold)
        assert layer["threshold_low"] == max(STATE_MIN, -8 * layer["threshold_high"])
        assert layer["threshold_low"] < float(ref.spk_layer.min_v_mem) == -layer["threshold_high"]
        # the network handed to make_config holds the same lower threshold
        assert float(layout.network.dynapcnn_layers[key].spk_layer.min_v_mem) == layer["threshold_low"]


def test_floor_override_is_clipped_to_the_16_bit_state(nmnist):
    model, layout = nmnist
    deep = layout_model(model, "sim", floor=-1000.0)
    assert deep.artifact["floor"] == -1000.0
    for layer, ref in zip(deep.artifact["layers"], layout.artifact["layers"]):
        assert torch.equal(layer["weight"], ref["weight"]) and layer["threshold_high"] == ref["threshold_high"]
        assert layer["threshold_low"] == max(STATE_MIN, -1000 * layer["threshold_high"]) == STATE_MIN
    shallow = layout_model(model, "sim", floor=-1.0)
    assert [la["threshold_low"] for la in shallow.artifact["layers"]] == \
        [-la["threshold_high"] for la in shallow.artifact["layers"]]


def test_input_avgpool_becomes_dvs_pooling_with_folded_weights(gesture):
    model, layout = gesture
    art = layout.artifact
    assert art["input_shape"] == [2, 128, 128] and art["input_pool"] == 2 and art["input_layer"] == "dvs"
    assert art["layers"][0]["input_shape"] == [2, 64, 64]
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for i, (conv, flt) in enumerate(zip(convs, art["float_layers"])):
        factor = 0.25 if i < 4 else 1.0  # an AvgPool2 precedes the four convs (and pools into the DVS layer)
        assert torch.allclose(flt["weight"].flatten(1), conv.weight.flatten(1) * factor)
    assert [layer["pool"] for layer in art["layers"]] == [[2, 2], [2, 2], [2, 2], [1, 1], [1, 1], [1, 1]]
    assert [layer["destinations"] for layer in art["layers"]] == [[1], [2], [3], [4], [5], []]


def test_heads(nmnist, gesture):
    assert nmnist[1].artifact["head"] == "if" and nmnist[1].artifact["input_pool"] == 1
    assert {layer["readout"] for layer in nmnist[1].artifact["layers"]} == {"spikes"}
    art = gesture[1].artifact
    last = art["layers"][-1]
    assert art["head"] == "membrane" and last["readout"] == "membrane" and art["n_classes"] == 11
    assert (last["threshold_high"], last["threshold_low"]) == (STATE_MAX, STATE_MIN)
    assert art["float_layers"][-1]["threshold_high"] == pytest.approx(STATE_MAX / last["scale"])
    assert all(layer["readout"] == "spikes" for layer in art["layers"][:-1])
    # the sinabs network handed to make_config carries the same unreachable thresholds
    spk = gesture[1].network.dynapcnn_layers[gesture[1].keys[-1]].spk_layer
    assert float(spk.spike_threshold) == STATE_MAX and float(spk.min_v_mem) == STATE_MIN


def test_float_layout_equals_torch_forward(nmnist):
    model, layout = nmnist
    torch.manual_seed(1)
    with torch.no_grad():
        for conv in (m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))):
            conv.weight.mul_(3.0)  # make every layer spike
        frames = (torch.rand(2, 6, 2, 34, 34) < 0.2).float()
        expected = model(frames).sum(1)
        fresh = layout_model(model, "sim")
        for layer in fresh.float_network.dynapcnn_layers.values():
            layer.spk_layer.batch_size = 2
        out = fresh.float_network(frames.flatten(0, 1)).unflatten(0, (2, 6)).sum(1).flatten(1)
    assert expected.sum() > 0
    assert torch.equal(out, expected)


def test_model_not_changed_by_layout(gesture):
    model, _ = gesture
    assert model.head == "membrane" and isinstance(model.blocks[-1][-1], nn.Linear)
    assert isinstance(model.to_sequential()[0], nn.AvgPool2d)


def test_float_layout_of_gesture_equals_torch_forward_and_membrane_vote():
    """DVS-layer input pooling, folded 1/4 and the membrane head reproduce the SpikingNet."""
    torch.manual_seed(0)
    model = build_model("gesture_4c2fc", bn=False)
    with torch.no_grad():
        for conv in (m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))):
            conv.weight.mul_(4.0)
        frames = (torch.rand(2, 3, 2, 128, 128) < 0.1).float() * 2
        caught = {}
        handle = model.blocks[4][-1].register_forward_hook(lambda mod, args, out: caught.update(spikes=out))
        expected = model(frames).sum(1)
        handle.remove()
        layout = layout_model(model, "sim")
        for layer in layout.float_network.dynapcnn_layers.values():
            layer.spk_layer.batch_size = 2
        outputs = layout.float_network(frames.flatten(0, 1), return_complete=True)
    hidden = outputs[layout.keys[4]][layout.keys[5]]
    assert caught["spikes"].sum() > 0
    assert torch.equal(hidden.flatten(1), caught["spikes"].flatten(1))
    membrane = layout.float_network.dynapcnn_layers[layout.keys[5]].spk_layer.v_mem.flatten(1)
    assert torch.allclose(membrane, expected, atol=1e-4)
