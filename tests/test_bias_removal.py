"""The bias-removal options: shrinking bias, per-layer rescaling, distillation from the BN model, and
the base-phase bias decay that makes the drop cheaper."""

import copy
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from speck_mtt.checkpoint import load_checkpoint, model_from_checkpoint
from speck_mtt.errors import SpeckMttError
from speck_mtt.models.networks import SpikingNet
from speck_mtt.models.neurons import multistep_if
from speck_mtt.mtt.config import ConfigSampler
from speck_mtt.mtt.losses import mean_output_ce
from speck_mtt.training.bias_removal import BiasSchedule, Distiller, layer_rates, rescale_weights
from speck_mtt.training.bn import absorb_bn, absorbed_bias, bias_penalty
from speck_mtt.training.loop import run, train_epoch, trainable_parameters

from test_train import tiny_frames, tiny_recipe

torch.set_num_threads(1)
SPECK = str(Path(sys.executable).parent / "speck-mtt")


def one_layer_net(gamma: float, beta: float) -> SpikingNet:
    """x (B, T, 1, 1, 1) -> Linear(1, 1, w=1) -> BN(gamma, beta, mean 0, var 1) -> IF: pre-activation gamma*x+beta."""
    lin = nn.Linear(1, 1, bias=False)
    bn = nn.BatchNorm1d(1)
    with torch.no_grad():
        lin.weight.fill_(1.0)
        bn.weight.fill_(gamma)
        bn.bias.fill_(beta)
        bn.running_var.fill_(1.0 - bn.eps)
    block = nn.Sequential(nn.Flatten(), lin, bn, multistep_if())
    return SpikingNet("hand", [block], "if", (1, 1, 1), 1).eval()


def constant_input(value: float, t: int = 8, batch: int = 2) -> torch.Tensor:
    return torch.full((batch, t, 1, 1, 1), value)


def test_percentile_rescaling_restores_the_hand_computed_function():
    # BN model: pre-activation 0.5 * 0.6 + 0.2 = 0.5 per step; bias-free: 0.3. Matching the
    # pre-activation percentile must scale the weight by 0.5 / 0.3 and give the BN model's spikes.
    base = one_layer_net(0.5, 0.2)
    free = copy.deepcopy(base)
    absorb_bn(free)
    x = constant_input(0.6)
    assert free(x).sum() < base(x).sum()  # the dropped bias was carrying spikes
    scales = rescale_weights(free, base, [x], 8, "percentile")
    assert scales == pytest.approx([0.5 / 0.3], rel=1e-5)
    assert free.blocks[0][1].weight.item() == pytest.approx(0.5 / 0.3 * 0.5, rel=1e-5)
    assert torch.equal(free(x), base(x))  # spikes at steps 2, 4, 6, 8


def test_rate_rescaling_matches_the_firing_rate_and_keeps_thresholds():
    base = one_layer_net(1.0, 0.25)  # 0.5 + 0.25 = 0.75 per step: 6 spikes in 8 steps
    free = copy.deepcopy(base)
    absorb_bn(free)
    x = constant_input(0.5)
    scales = rescale_weights(free, base, [x], 8, "rate")
    assert layer_rates(free, [x], 8) == pytest.approx(layer_rates(base, [x], 8)) == [0.75]
    assert 1.5 <= scales[0] < 1.75  # 6 of 8 steps spike for an input 0.5 * scale in [0.75, 0.875)
    assert float(free.blocks[0][3].spike_threshold) == 1.0


def test_bias_schedule_shrinks_linearly_to_exactly_zero():
    base = one_layer_net(1.0, 0.4)
    net = copy.deepcopy(base)
    dropped = absorb_bn(net)
    schedule = BiasSchedule(net, dropped, epochs=3)
    bn = net.blocks[0][2]
    scales = [schedule.set_epoch(e) for e in range(5)]
    assert scales[:2] == pytest.approx([2 / 3, 1 / 3]) and scales[2:] == [0.0, 0.0, 0.0]
    assert bn.bias.item() == 0.0 and not bn.bias.requires_grad
    with torch.no_grad():  # at scale 1 the absorbed network is the BN model, exactly
        bn.bias.copy_(dropped[0])
    x = constant_input(0.3)
    assert torch.equal(net(x), base(x))


def test_distillation_targets_come_from_the_frozen_base_model():
    torch.manual_seed(0)
    base = one_layer_net(1.0, 0.5)
    before = {k: v.clone() for k, v in base.state_dict().items() if "v_mem" not in k}
    student = copy.deepcopy(base)
    absorb_bn(student)
    distill = Distiller(base, t_max=4, weight=2.0)
    x = torch.rand(3, 4, 1, 1, 1)
    expected = torch.log_softmax(base(x).mean(1), dim=1)
    assert torch.equal(distill.targets(x), expected)
    assert distill.loss(base(x), expected).item() == pytest.approx(0.0, abs=1e-7)  # KL to itself
    opt = torch.optim.SGD(trainable_parameters(student), lr=0.5)
    train_epoch(student, [(x, torch.zeros(3, dtype=torch.long))], ConfigSampler("sdt", 1, 1, 4, 4, seed=0),
                mean_output_ce, opt, "cpu", bn_locked=True, distill=distill)
    assert all(torch.equal(v, base.state_dict()[k]) for k, v in before.items())  # the teacher never trains
    assert not any(p.requires_grad for p in base.parameters())


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("br")
    data = (tiny_frames(32), tiny_frames(16, seed=1))
    run(tiny_recipe(epochs=1), d / "base", datasets=data, progress=False)
    return d, data


def test_a_shrinking_bias_run_records_its_schedule_and_ends_bias_free(base_run):
    d, data = base_run
    rec = tiny_recipe(epochs=1)
    rec = replace(rec, bias_removal=replace(rec.bias_removal, epochs=3, shrink_epochs=2, rescale="rate", distill=0.5))
    summary = run(rec, d / "all", phase="bias-removal", from_ckpt=d / "base/model.pt", datasets=data, progress=False)
    ck = load_checkpoint(d / "all/model.pt")
    assert [m["bias_scale"] for m in ck["metrics"]] == [0.5, 0.0, 0.0]
    assert not [k for k in ck["model"] if "bias" in k or "running" in k]
    absorbed = summary["eval_absorbed"]
    assert set(absorbed["layer_rates"]) == {"bn", "dropped", "rescaled", "fine_tuned"}
    assert len(absorbed["rescale_scales"]) == 3 and "rescaled" in absorbed  # 3 conv layers had BN


def test_the_fine_tune_runs_at_its_own_t_max(base_run):
    d, _ = base_run
    rec = tiny_recipe(epochs=1)
    rec = replace(rec, bias_removal=replace(rec.bias_removal, t_max=6))
    assert rec.for_phase("base") is rec and rec.for_phase("bias-removal").train.t_max == 6
    wide = replace(rec, eval=replace(rec.eval, ts=(1, 6)))  # eval.ts may reach the fine-tune's T_max ...
    assert wide.for_phase("bias-removal").eval.ts == (1, 6)
    with pytest.raises(SpeckMttError, match=r"eval.ts \[6\] outside \[1, T_max of the base phase=3\]"):
        wide.for_phase("base")  # ... but the base phase runs at train.t_max
    fine = (tiny_frames(32, t=6), tiny_frames(16, t=6, seed=1))
    summary = run(rec, d / "t6", phase="bias-removal", from_ckpt=d / "base/model.pt", datasets=fine, progress=False)
    ck = load_checkpoint(d / "t6/model.pt")
    assert ck["t_max"] == 6 and ck["recipe"]["train"]["t_max"] == 6 and ck["recipe"]["bias_removal"]["t_max"] == 6
    assert summary["eval"]["t"] == [1, 2, 3, 4, 5, 6]


def test_bias_penalty_is_the_mean_square_of_what_absorption_drops():
    net = one_layer_net(gamma=2.0, beta=0.5)
    bn = net.blocks[0][2]
    with torch.no_grad():
        bn.running_mean.fill_(0.1)  # dropped bias 0.5 - 0.1 * 2 / sqrt(1) = 0.3
    assert torch.allclose(absorbed_bias(bn), torch.tensor([0.3]))
    assert bias_penalty(net).item() == pytest.approx(0.09)
    bias_penalty(net).backward()  # gradients reach beta and gamma: d/dbeta 2b = 0.6, d/dgamma 2b (-0.1) = -0.06
    assert bn.bias.grad.item() == pytest.approx(0.6) and bn.weight.grad.item() == pytest.approx(-0.06, rel=1e-3)
    assert [b.item() for b in absorb_bn(copy.deepcopy(net))] == pytest.approx([0.3])


def test_bias_decay_shrinks_the_bias_the_drop_will_remove(base_run):
    d, data = base_run
    dropped = {}
    for decay in (0.0, 10.0):
        rec = tiny_recipe(epochs=2, lr=5e-2, bias_decay=decay)  # 16 Adam steps: enough to move beta
        run(rec, d / f"decay{decay}", datasets=data, progress=False)
        ck = load_checkpoint(d / f"decay{decay}/model.pt")
        dropped[decay] = bias_penalty(model_from_checkpoint(ck)).item()
        assert ("bias_penalty" in ck["metrics"][-1]) == (decay > 0)
    assert dropped[10.0] < 0.5 * dropped[0.0], dropped


def test_bias_decay_leaves_a_network_without_bn_alone(base_run):
    d, data = base_run
    rec = tiny_recipe(epochs=1, bias_decay=1.0)
    rec = replace(rec, model=replace(rec.model, bn=False))
    run(rec, d / "no-bn", datasets=data, progress=False)
    assert "bias_penalty" not in load_checkpoint(d / "no-bn/model.pt")["metrics"][-1]


def test_bad_bias_removal_settings_are_one_line_errors():
    for setting, word in (("bias_removal.rescale=max", "rescale"), ("bias_removal.shrink_epochs=30", "shrink_epochs"),
                          ("train.bias_decay=-1", "bias_decay"),
                          ("bias_removal.distill=-1", "distill"), ("bias_removal.t_max=-1", "bias_removal.t_max")):
        res = subprocess.run([SPECK, "train", "nmnist", "--quick", "--set", setting], capture_output=True, text=True)
        assert res.returncode == 2 and word in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_fine_input_frames_random_bounds_and_a_membrane_readout_in_the_fine_tune(base_run):
    d, _ = base_run
    rec = tiny_recipe(epochs=1, input_frames=6, random_bounds=True, input_stage="draw")
    rec = replace(rec, model=replace(rec.model, head="membrane"))
    fine = (tiny_frames(32, t=6), tiny_frames(16, t=6, seed=1))  # the data at input_frames, finer than T_max 3
    summary = run(rec, d / "fine", phase="bias-removal", from_ckpt=d / "base/model.pt", datasets=fine, progress=False)
    ck = load_checkpoint(d / "fine/model.pt")
    assert ck["t_max"] == 3 and summary["eval"]["t"] == [1, 2, 3]  # evaluated at T_max, not at the input frames
    assert ck["arch_kwargs"]["head"] == "membrane" and ck["recipe"]["train"]["input_frames"] == 6
    model = model_from_checkpoint(ck)
    assert model.head == "membrane" and isinstance(model.blocks[-1][-1], nn.Linear)
    assert not [k for k in ck["model"] if k.startswith("blocks.3.") and "threshold" in k]


def test_input_frames_and_head_settings_are_checked():
    for setting, word in (("train.input_frames=5", "input_frames"), ("model.head=rate", "model.head")):
        res = subprocess.run([SPECK, "train", "nmnist", "--quick", "--set", setting], capture_output=True, text=True)
        assert res.returncode == 2 and word in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
