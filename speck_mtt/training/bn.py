"""BatchNorm for a Speck-ready network (docs/design.md#bn-procedure, steps 2-4).

- calibrate_bn: MTT leaves running statistics wrong; recompute them as a cumulative average
  over ~10 training batches at uniform T_max, without gradients (nothing else changes).
- lock_bn: BN in eval mode during fine-tuning (statistics frozen).
- absorb_bn: fold BN into the preceding conv/linear weight, w <- w * gamma / sqrt(var + eps),
  DROPPING the bias beta - gamma * mean / sqrt(var + eps) (on Speck a bias is a leak). The BN
  module stays as a locked exact identity (gamma 1, beta 0, mean 0, var 1 - eps, frozen), so a
  bias-free fine-tune keeps the same layout and re-absorbing creates no bias.
- to_bias_free: the same network built with bn=False, weights carried over block by block.
- bias_penalty: the mean squared bias absorption would drop, for a base training that learns to
  need less of it (train.bias_decay).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..errors import SpeckMttError
from ..models import SpikingNet, build_model
from ..timegroups import resample_time

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)
_WEIGHT = (nn.Conv2d, nn.Linear)


def bn_modules(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, _BN)]


def has_bn(model: nn.Module) -> bool:
    return bool(bn_modules(model))


@torch.no_grad()
def calibrate_bn(model: SpikingNet, batches: Iterable[torch.Tensor], t: int, n_batches: int = 10,
                 device: torch.device | str = "cpu") -> int:
    """Reset BN running stats and re-estimate them (cumulative average) at uniform T = t.

    batches yields input frames (B, T_in, C, H, W); returns the number of batches used. Only BN
    running statistics (and their counters) change; the modules' train/eval flags are restored.
    """
    bns = bn_modules(model)
    if not bns:
        return 0
    was_training = [m.training for m in model.modules()]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over all calibration batches
    model.eval()
    for m in bns:
        m.train()
    used = 0
    n_stages = model.n_stages()
    try:
        for x in batches:
            if used >= n_batches:
                break
            x = resample_time(x.to(device), t, dim=1)
            model(x, [t] * n_stages)
            used += 1
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        for m, flag in zip(model.modules(), was_training):
            m.train(flag)
    if used == 0:
        raise SpeckMttError("BN calibration got no batches; the training set is empty")
    return used


def lock_bn(model: nn.Module) -> None:
    """Put every BN in eval mode (call after model.train(): it flips BN back)."""
    for m in bn_modules(model):
        m.eval()


def _pairs(model: SpikingNet) -> list[tuple[nn.Module, nn.modules.batchnorm._BatchNorm]]:
    """(weight layer, the BN right after it) in every block; a BN after anything else is refused."""
    pairs = []
    for block in model.blocks:
        layers = list(block)
        for i, layer in enumerate(layers):
            if isinstance(layer, _BN):
                if i == 0 or not isinstance(layers[i - 1], _WEIGHT):
                    raise SpeckMttError(f"{model.name}: a BatchNorm that does not follow a conv/linear "
                                        "cannot be absorbed; put BN right after its weight layer")
                pairs.append((layers[i - 1], layer))
    return pairs


def _scale(bn: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    return bn.weight / torch.sqrt(bn.running_var + bn.eps)


def absorbed_bias(bn: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """The bias BN adds after its weight layer at its running statistics: beta - gamma * mean / sigma
    (differentiable in gamma and beta)."""
    return bn.bias - bn.running_mean * _scale(bn)


def bias_penalty(model: SpikingNet) -> torch.Tensor:
    """Sum over the BN layers of the mean squared bias that absorb_bn would drop (in thresholds per step)."""
    terms = [absorbed_bias(bn).pow(2).mean() for _, bn in _pairs(model)]
    return torch.stack(terms).sum() if terms else torch.zeros(())


@torch.no_grad()
def absorb_bn(model: SpikingNet) -> list[torch.Tensor]:
    """Fold every BN into its weight layer in place, drop the bias; return the dropped biases.

    Afterwards each BN is a frozen exact identity (see lock_identity_bn).
    """
    dropped = []
    for layer, bn in _pairs(model):
        dropped.append(absorbed_bias(bn).detach().clone())
        layer.weight.mul_(_scale(bn).reshape(-1, *([1] * (layer.weight.dim() - 1))))
    lock_identity_bn(model)
    return dropped


@torch.no_grad()
def lock_identity_bn(model: nn.Module) -> None:
    """Make every BN an exact identity that training cannot change: y = (x - 0) / sqrt(1 - eps + eps) * 1 + 0."""
    for bn in bn_modules(model):
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
        bn.weight.fill_(1.0)
        bn.bias.zero_()
        bn.weight.requires_grad_(False)
        bn.bias.requires_grad_(False)
        bn.eval()


def to_bias_free(model: SpikingNet, arch_kwargs: dict[str, Any]) -> tuple[SpikingNet, dict[str, Any]]:
    """Absorb BN and rebuild the network with bn=False (same blocks minus BN), weights carried over."""
    if has_bn(model):
        absorb_bn(model)
    kwargs = {**arch_kwargs, "bn": False}
    plain = build_model(model.name, **kwargs)
    plain.granularity = model.granularity
    for src_block, dst_block in zip(model.blocks, plain.blocks, strict=True):
        src = [m for m in src_block if not isinstance(m, _BN)]
        dst = list(dst_block)
        if [type(m) for m in src] != [type(m) for m in dst]:
            raise SpeckMttError(f"{model.name}: block layout without BN differs from build_model(bn=False)")
        for s, d in zip(src, dst):
            for name, p in d.named_parameters(recurse=False):
                p.data.copy_(getattr(s, name).data)
    return plain, kwargs


def bias_parameters(model: nn.Module) -> list[str]:
    """Names of trainable parameters called bias (must be empty for a Speck-ready network)."""
    return [n for n, p in model.named_parameters() if n.endswith("bias") and p.requires_grad]
