"""Options of the bias-removal step that help the bias-free network keep the BN model's accuracy.

Absorbing BN drops each layer's bias (on Speck a bias is a leak); on a deep network the layers
that the bias was carrying then fire too little or too much. Three remedies, each a recipe
setting under [bias_removal]:

- BiasSchedule (shrink_epochs = K): the dropped bias is put back into the locked identity BN
  as a frozen term and shrunk linearly to exactly zero over the first K fine-tune epochs.
- rescale_weights (rescale = "rate" | "percentile"): before fine-tuning, scale each absorbed
  layer's weights so that its firing rate (or its pre-activation percentile) on a few training
  batches matches the BN model's, as ANN-to-SNN conversion does. Weights, not thresholds, are
  scaled: the chip layout assumes threshold 1 in float units.
- Distiller (distill = weight): KL divergence from the frozen BN base model's time-mean output
  (at uniform T_max) to the fine-tuned network's, added to the task loss.

layer_rates measures what the bias carried: per spiking layer, the mean spikes per neuron and
time step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..models import SpikingNet
from ..models.neurons import spiking_neurons
from ..timegroups import resample_time
from .bn import bn_modules

RESCALE_MODES = ("none", "rate", "percentile")
PERCENTILE = 99.9  # of the positive pre-activations (robust maximum, as in ANN-to-SNN conversion)
_SEARCH_STEPS = 12  # bisection on log2(scale) in [-4, 4]: resolution 2^(8/4096) ~ 0.14 %


def _uniform(model: SpikingNet, x: torch.Tensor, t: int) -> torch.Tensor:
    return model(resample_time(x, t, dim=1), [t] * model.n_stages())


@torch.no_grad()
def layer_rates(model: SpikingNet, batches: Sequence[torch.Tensor], t: int) -> list[float]:
    """Mean spikes per neuron and time step of every spiking layer, at uniform T = t."""
    neurons = spiking_neurons(model)
    sums = [0.0] * len(neurons)
    hooks = [n.register_forward_hook(lambda _m, _i, out, k=k: sums.__setitem__(k, sums[k] + out.mean().item()))
             for k, n in enumerate(neurons)]
    was_training = model.training
    model.eval()
    try:
        for x in batches:
            _uniform(model, x, t)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return [s / max(len(batches), 1) for s in sums]


class BiasSchedule:
    """The dropped biases as frozen terms of the identity BNs, scaled by 1 - epoch / K.

    set_epoch(e) before training epoch e (0-based): scale max(0, 1 - (e + 1) / K), so epoch K - 1
    and every later one train bias-free, and the final network (BN and its terms removed) is
    exactly the one trained last.
    """

    def __init__(self, model: nn.Module, dropped: Sequence[torch.Tensor], epochs: int):
        self.bns = bn_modules(model)
        if len(self.bns) != len(dropped):
            raise ValueError(f"{len(dropped)} dropped biases for {len(self.bns)} BatchNorm layers")
        self.dropped = [b.detach().clone() for b in dropped]
        self.epochs = epochs

    def scale(self, epoch: int) -> float:
        return max(0.0, 1.0 - (epoch + 1) / self.epochs)

    @torch.no_grad()
    def set_epoch(self, epoch: int) -> float:
        s = self.scale(epoch)
        for bn, b in zip(self.bns, self.dropped):
            bn.bias.copy_(b.to(bn.bias.device) * s)  # bias requires no grad: never trained
        return s


@torch.no_grad()
def rescale_weights(model: SpikingNet, base: SpikingNet, batches: Sequence[torch.Tensor], t: int,
                    mode: str) -> list[float]:
    """Scale the weights before each (locked identity) BN of `model` so that layer by layer its
    statistic matches `base` (the BN model) on `batches` at uniform T = t; returns the scales.

    mode "rate": the spiking layer's mean firing rate (bisection on the scale); "percentile": the
    PERCENTILE-th percentile of the positive pre-activations (the BN output). Layers are fitted in
    order, each on the inputs the already-rescaled layers before it produce.
    """
    if mode not in RESCALE_MODES[1:]:
        raise ValueError(f"rescale mode {mode!r}; choose one of {', '.join(RESCALE_MODES)}")
    was = model.training, base.training
    model.eval()
    base.eval()
    try:
        targets = _block_stats(base, batches, t, mode)
        inputs = [resample_time(x, t, dim=1).flatten(0, 1) for x in batches]
        scales = []
        for block, target in zip(model.blocks, targets):
            weight = _absorbed_weight(block)
            if weight is not None and target is not None:
                scales.append(_fit_scale(block, weight, inputs, target, mode, t))
            inputs = [_run_block(block, h, t) for h in inputs]
    finally:
        model.train(was[0])
        base.train(was[1])
    return scales


def _absorbed_weight(block: nn.Sequential) -> torch.Tensor | None:
    """The weight of the conv/linear right before the block's BN (None: the block had no bias)."""
    layers = list(block)
    for i, layer in enumerate(layers):
        if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return layers[i - 1].weight
    return None


def _run_block(block: nn.Sequential, h: torch.Tensor, t: int) -> torch.Tensor:
    """One block on (B*T, ...) input with fresh neuron states."""
    for n in spiking_neurons(block):
        n.reset_states()
        n.batch_size = h.shape[0] // t
    return block(h)


def _block_stat(block: nn.Sequential, h: torch.Tensor, t: int, mode: str) -> torch.Tensor:
    """The block's spikes (mode rate) or its BN output, the neuron's input (mode percentile)."""
    if mode == "rate":
        return _run_block(block, h, t)
    bn = [m for m in block if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))][0]
    seen: list[torch.Tensor] = []
    hook = bn.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        _run_block(block, h, t)
    finally:
        hook.remove()
    return seen[0]


def _reduce(values: list[torch.Tensor], mode: str) -> float:
    v = torch.cat([x.flatten() for x in values])
    if mode == "rate":
        return float(v.mean())
    pos = v[v > 0]
    return float(torch.quantile(pos[:16_000_000].float(), PERCENTILE / 100)) if len(pos) else 0.0


def _block_stats(base: SpikingNet, batches: Sequence[torch.Tensor], t: int, mode: str) -> list[float | None]:
    """Per block of the BN model: its statistic, or None for a block without BN."""
    inputs = [resample_time(x, t, dim=1).flatten(0, 1) for x in batches]
    stats: list[float | None] = []
    for block in base.blocks:
        has = _absorbed_weight(block) is not None
        stats.append(_reduce([_block_stat(block, h, t, mode) for h in inputs], mode) if has else None)
        inputs = [_run_block(block, h, t) for h in inputs]
    return stats


def _fit_scale(block: nn.Sequential, weight: torch.Tensor, inputs: list[torch.Tensor], target: float,
               mode: str, t: int) -> float:
    """Multiply `weight` in place by the scale that brings the block's statistic to `target`."""
    original = weight.detach().clone()

    def stat(scale: float) -> float:
        weight.copy_(original * scale)
        return _reduce([_block_stat(block, h, t, mode) for h in inputs], mode)

    if mode == "percentile":
        now = stat(1.0)
        scale = target / now if now > 0 and target > 0 else 1.0
    else:
        lo, hi = -4.0, 4.0  # log2 of the scale: rates are non-decreasing in it
        for _ in range(_SEARCH_STEPS):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if stat(2.0 ** mid) < target else (lo, mid)
        scale = 2.0 ** hi  # the smallest scale seen that reaches the target (rates are steps)
    weight.copy_(original * scale)
    return scale


class Distiller:
    """KL(teacher || student) of the time-mean outputs at temperature 1, times `weight`.

    The teacher is the frozen BN base model run at uniform T_max (its best T: BN statistics are
    taken there), once per batch; its output is the target for every drawn configuration.
    """

    def __init__(self, teacher: SpikingNet, t_max: int, weight: float):
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.t_max = t_max
        self.weight = weight

    @torch.no_grad()
    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of the teacher's time-mean output."""
        self.teacher.eval()
        return F.log_softmax(_uniform(self.teacher, x, self.t_max).mean(1), dim=1)

    def loss(self, out: torch.Tensor, target_logp: torch.Tensor) -> torch.Tensor:
        return self.weight * F.kl_div(F.log_softmax(out.mean(1), dim=1), target_logp, log_target=True,
                                      reduction="batchmean")

