"""BN calibration, absorption (bias dropped) and the bias-free rebuild."""

import pytest
import torch
from torch import nn

from speck_mtt.models import build_model
from speck_mtt.timegroups import resample_time
from speck_mtt.training.bn import (absorb_bn, bias_parameters, bn_modules, calibrate_bn, lock_bn,
                                lock_identity_bn, to_bias_free)


def _randomize_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in bn_modules(model):
            n = bn.num_features
            bn.weight.copy_(0.5 + torch.rand(n, generator=g))
            bn.bias.copy_(torch.randn(n, generator=g) * 0.3)
            bn.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
            bn.running_var.copy_(0.5 + torch.rand(n, generator=g))


def test_calibration_changes_running_stats_only():
    torch.manual_seed(0)
    model = build_model("nmnist_3c1fc", bn=True)
    model.train()
    bns = bn_modules(model)
    params = {k: v.clone() for k, v in model.named_parameters()}
    batches = [torch.poisson(torch.full((4, 6, 2, 34, 34), 0.5)) for _ in range(3)]
    used = calibrate_bn(model, iter(batches), t=3, n_batches=2)
    assert used == 2
    assert all(torch.equal(v, dict(model.named_parameters())[k]) for k, v in params.items())
    assert all(bn.momentum == 0.1 for bn in bns) and model.training and all(bn.training for bn in bns)
    # cumulative average of the batch means of the first BN's input at uniform T = 3
    conv = model.blocks[0][0]
    means = [conv(resample_time(x, 3, dim=1).flatten(0, 1)).mean((0, 2, 3)) for x in batches[:2]]
    assert torch.allclose(bns[0].running_mean, sum(means) / 2, atol=1e-5)
    assert int(bns[0].num_batches_tracked) == 2
    # reset first: calibrating again with the same batches gives the same statistics
    first = [bn.running_var.clone() for bn in bns]
    calibrate_bn(model, iter(batches), t=3, n_batches=2)
    assert all(torch.allclose(a, bn.running_var) for a, bn in zip(first, bns))


def test_lock_bn_puts_bn_in_eval():
    model = build_model("nmnist_3c1fc", bn=True)
    model.train()
    lock_bn(model)
    assert model.training and not any(bn.training for bn in bn_modules(model))


def test_absorbed_layer_equals_bn_minus_dropped_bias():
    torch.manual_seed(1)
    model = build_model("nmnist_3c1fc", bn=True)
    _randomize_bn(model)
    model.eval()
    x = torch.randn(5, 2, 34, 34)
    conv, bn = model.blocks[0][0], model.blocks[0][1]
    with torch.no_grad():
        ref = bn(conv(x))
    dropped = absorb_bn(model)
    with torch.no_grad():
        got = conv(x)
    assert torch.allclose(got, ref - dropped[0][None, :, None, None], atol=1e-5)
    assert torch.equal(bn(got), got)  # BN left as an exact identity
    assert not bias_parameters(model)


def test_absorbed_network_equals_bn_network_when_the_dropped_bias_is_zero():
    torch.manual_seed(2)
    model = build_model("gesture_4c2fc")
    _randomize_bn(model)
    with torch.no_grad():  # beta = gamma * mean / sqrt(var + eps): the bias to drop is exactly zero
        for bn in bn_modules(model):
            bn.bias.copy_(bn.weight * bn.running_mean / torch.sqrt(bn.running_var + bn.eps))
    model.eval()
    x = torch.poisson(torch.full((2, 3, 2, 128, 128), 0.2))
    with torch.no_grad():
        ref = model(x)
        dropped = absorb_bn(model)
        assert all(d.abs().max() < 1e-5 for d in dropped)
        got = model(x)
    assert torch.allclose(got, ref, atol=1e-4)


def test_to_bias_free_has_no_bn_no_bias_and_same_outputs():
    torch.manual_seed(3)
    model = build_model("gesture_4c2fc")
    _randomize_bn(model)
    model.eval()
    absorb_bn(model)
    x = torch.poisson(torch.full((2, 2, 2, 128, 128), 0.2))
    with torch.no_grad():
        ref = model(x)
    plain, kwargs = to_bias_free(model, {"bn": True})
    assert kwargs == {"bn": False}
    assert not bn_modules(plain) and not [n for n, _ in plain.named_parameters() if "bias" in n]
    assert plain.n_weights() == model.n_weights() == 48_592
    with torch.no_grad():
        assert torch.equal(plain(x), ref)


def test_lock_identity_bn_freezes_beta_at_zero():
    model = build_model("nmnist_3c1fc", bn=True)
    lock_identity_bn(model)
    for bn in bn_modules(model):
        assert not bn.weight.requires_grad and not bn.bias.requires_grad and not bn.training
        x = torch.randn(3, bn.num_features, 4, 4)
        assert torch.equal(bn(x), x)
    opt_params = [p for p in model.parameters() if p.requires_grad]
    assert all(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()
               if any(p is q for p in m.parameters(recurse=False) for q in opt_params))


def test_absorbing_twice_is_idempotent():
    model = build_model("nmnist_3c1fc", bn=True)
    _randomize_bn(model)
    absorb_bn(model)
    w = [m.weight.clone() for m in model.modules() if isinstance(m, nn.Conv2d)]
    dropped = absorb_bn(model)
    assert all(d.abs().max() == 0 for d in dropped)
    assert all(torch.equal(a, m.weight) for a, m in zip(w, [m for m in model.modules() if isinstance(m, nn.Conv2d)]))
