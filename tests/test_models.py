import pytest
import sinabs.layers as sl
import torch
from torch import nn

from speck_mtt.errors import SpeckMttError
from speck_mtt.models import build_model
from speck_mtt.models.neurons import DEFAULT_FLOOR, floor_of, multistep_if, set_floor


@pytest.mark.parametrize("arch,weights", [("nmnist_3c1fc", 6160), ("gesture_4c2fc", 48592)])
def test_weight_counts(arch, weights):
    assert build_model(arch).n_weights() == weights


def test_vggsnn_size_and_bn():
    m = build_model("vggsnn")
    assert 9.1e6 < m.n_weights() < 9.3e6
    assert sum(p.numel() for mod in m.modules() if isinstance(mod, nn.BatchNorm2d) for p in mod.parameters()) > 0


def test_gesture_bn_params():
    m = build_model("gesture_4c2fc")
    assert sum(p.numel() for mod in m.modules() if isinstance(mod, nn.BatchNorm2d) for p in mod.parameters()) == 176


@pytest.mark.parametrize("arch", ["nmnist_3c1fc", "gesture_4c2fc", "vggsnn"])
def test_no_bias_and_spec_neuron(arch):
    m = build_model(arch)
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            assert mod.bias is None
        if isinstance(mod, sl.IAFSqueeze):
            assert float(mod.min_v_mem) == DEFAULT_FLOOR and float(mod.spike_threshold) == 1.0


def test_heads():
    assert build_model("nmnist_3c1fc").head == "if"
    assert isinstance(build_model("nmnist_3c1fc").blocks[-1][-1], sl.IAFSqueeze)
    g = build_model("gesture_4c2fc")
    assert g.head == "membrane" and isinstance(g.blocks[-1][-1], nn.Linear)


def test_stages_and_variable_t():
    m = build_model("gesture_4c2fc")
    assert m.stages() == [[0, 1], [2, 3], [4, 5]]
    y = m(torch.rand(2, 4, 2, 128, 128), [4, 1, 7])
    assert y.shape == (2, 7, 11)


def test_multistep_if_emits_several_spikes():
    m = build_model("nmnist_3c1fc")
    neuron = m.blocks[0][-1]
    neuron.batch_size = 1
    neuron.reset_states()
    out = neuron(torch.tensor([[2.5]]).reshape(1, 1))
    assert out.item() == 2.0 and neuron.v_mem.item() == pytest.approx(0.5)


def test_state_reset_between_forwards():
    m = build_model("nmnist_3c1fc").eval()
    x = torch.rand(1, 5, 2, 34, 34) * 3
    with torch.no_grad():
        torch.testing.assert_close(m(x), m(x))


@pytest.mark.parametrize("t", [1, 7])
def test_multistep_if_equals_sinabs_iafsqueeze(t):
    """Same spikes, membrane and input gradients as sinabs' own IAFSqueeze (only the time loop differs)."""
    import sinabs.layers as sl

    from speck_mtt.models.neurons import multistep_if

    ours = multistep_if()
    ref = sl.IAFSqueeze(**ours.arg_dict)
    assert type(ref) is sl.IAFSqueeze
    x = (3 * torch.randn(3 * t, 4, 5, 5)).requires_grad_()
    xr = x.detach().clone().requires_grad_()
    for layer in (ours, ref):
        layer.batch_size = 3
    out, out_ref = ours(x), ref(xr)
    assert torch.equal(out, out_ref) and out.sum() > 0
    assert torch.equal(ours.v_mem, ref.v_mem)
    w = torch.randn_like(out)
    (out * w).sum().backward()
    (out_ref * w).sum().backward()
    assert torch.allclose(x.grad, xr.grad, atol=1e-6)


@pytest.mark.parametrize("floor", [-1.0, -4.0])
def test_training_neuron_clamps_at_the_floor(floor):
    """v <- max(v + I - s * theta, floor * theta), one step by hand: the floor is in thresholds."""
    neuron = multistep_if(floor)
    neuron.batch_size = 1
    x = torch.tensor([[-10.0], [2.5], [-0.25]])  # (B*T, 1): three steps of one neuron
    out = neuron(x)
    assert out.flatten().tolist() == [0.0, 0.0, 0.0] if floor == -4.0 else [0.0, 1.0, 0.0]
    # floor -4: -10 -> -4, +2.5 -> -1.5, -0.25 -> -1.75; floor -1: -1, 1.5 -> 1 spike, 0.5, 0.25
    assert float(neuron.v_mem) == pytest.approx(-1.75 if floor == -4.0 else 0.25)


def test_floor_is_a_model_setting_and_can_be_changed():
    m = build_model("nmnist_3c1fc", bn=False, floor=-4.0)
    assert floor_of(m) == -4.0
    set_floor(m, -16.0)
    assert floor_of(m) == -16.0
    assert {float(n.min_v_mem) for n in m.modules() if isinstance(n, sl.IAFSqueeze)} == {-16.0}
    with pytest.raises(SpeckMttError, match="floor 5.0"):
        build_model("nmnist_3c1fc", floor=5.0)


def test_checkpoints_keep_their_floor_and_old_ones_read_as_minus_one():
    """The floor travels in arch_kwargs (neuron parameters are not saved with the weights); a
    checkpoint from before the setting was trained at -1 theta and must be rebuilt so."""
    from speck_mtt.checkpoint import make_checkpoint, model_from_checkpoint

    model = build_model("nmnist_3c1fc", bn=False, floor=-4.0)
    ckpt = make_checkpoint(model, {"bn": False, "floor": -4.0})
    assert floor_of(model_from_checkpoint(ckpt)) == -4.0
    legacy = make_checkpoint(model, {"bn": False})
    assert floor_of(model_from_checkpoint(legacy)) == -1.0


def test_switching_the_head_keeps_the_weights_and_changes_only_the_readout():
    from speck_mtt.models.networks import switch_head
    torch.manual_seed(0)
    net = build_model("nmnist_3c1fc")
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.abs_()  # excitatory enough that spikes reach the readout
    x = torch.poisson(torch.full((2, 4, 2, 34, 34), 0.3))
    spikes = net(x)
    assert spikes.sum() > 0
    lin = net.blocks[-1][1]
    switch_head(net, "membrane", DEFAULT_FLOOR)
    assert net.head == "membrane" and net.blocks[-1][-1] is lin  # the same weights, no neuron after them
    membrane = net(x)
    assert membrane.shape == spikes.shape and not torch.equal(membrane, spikes)
    built = build_model("nmnist_3c1fc", head="membrane")  # what a checkpoint with head "membrane" rebuilds
    assert [n for n, _ in built.named_parameters()] == [n for n, _ in net.named_parameters()]
    switch_head(net, "if", DEFAULT_FLOOR)
    assert torch.equal(net(x), spikes)  # back to spike-count voting: the same network as before
    with pytest.raises(SpeckMttError, match="unknown head"):
        switch_head(net, "rate", DEFAULT_FLOOR)
