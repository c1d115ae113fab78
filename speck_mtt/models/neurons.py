"""The training neuron: sinabs multistep IF, composed from sinabs' own pieces.

Its lower clamp ("floor", min_v_mem) is a setting, given in units of the threshold: the chip's
lower threshold is a 16-bit register, and event by event a shallow floor throws away inhibition
that a time step sums against excitation (measured: a floor at -1 theta costs 10-15 pp of
event-driven accuracy, one at -4 theta or deeper far less). Training uses the floor the network
will be deployed with, so torch and the chip clamp alike.
"""

from __future__ import annotations

import copy

import sinabs.layers as sl
import torch
from sinabs.activation import MembraneSubtract, MultiSpike, SingleExponential
from sinabs.layers.functional.lif import lif_forward_single

from ..errors import SpeckMttError

THRESHOLD = 1.0
DEFAULT_FLOOR = -8.0  # lower clamp in thresholds; never None (sinabs has no unclamped twin on chip)
FLOOR_RANGE = (-1000.0, 0.0)  # deeper loses float32 resolution in sinabs' clamp (relu(v - f) + f)


class MultistepIF(sl.IAFSqueeze):
    """sinabs IAFSqueeze with a linear-cost time loop.

    sinabs steps through time with input[:, t]; the backward of each such slice writes a zero
    tensor the size of the whole input, so a training step costs O(T^2) (at T = 30 it took 11x
    the time of T = 10 on a CPU). This layer slices the input once (unbind) and runs sinabs' own
    single-step update (lif_forward_single with the layer's spike, reset and surrogate
    functions): the same arithmetic and gradients. sinabs' DynapCNN conversion matches layer
    types exactly, so what goes to sinabs gets plain twins (sinabs_twin, with_sinabs_neurons).
    """

    def forward(self, input_data: torch.Tensor) -> torch.Tensor:
        return self.squeeze_forward(input_data, self._forward_steps)

    def _forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, ...) -> spikes (B, T, ...); the membrane carries over between calls as in sinabs."""
        batch, _, *trailing = x.shape
        if not self.is_state_initialised() or not self.state_has_shape((batch, *trailing)):
            self.init_state_with_shape((batch, *trailing))
        state = dict(self.named_buffers())
        spikes = []
        for x_t in x.unbind(1):
            s_t, state = lif_forward_single(
                input_data=x_t, alpha_mem=self.alpha_mem_calculated, alpha_syn=self.alpha_syn_calculated,
                state=state, spike_threshold=self.spike_threshold, spike_fn=self.spike_fn,
                reset_fn=self.reset_fn, surrogate_grad_fn=self.surrogate_grad_fn, min_v_mem=self.min_v_mem,
                norm_input=self.norm_input)
            spikes.append(s_t)
        self.v_mem = state["v_mem"]
        out = torch.stack(spikes, 1)
        self.firing_rate = out.mean()
        return out


def check_floor(floor: float) -> float:
    """The floor as a float, or a one-line error naming the allowed range."""
    floor = float(floor)
    if not FLOOR_RANGE[0] <= floor <= FLOOR_RANGE[1]:
        raise SpeckMttError(f"floor {floor}: the lower clamp must lie in [{FLOOR_RANGE[0]:g}, {FLOOR_RANGE[1]:g}] "
                            "thresholds (e.g. -8)")
    return floor


def multistep_if(floor: float = DEFAULT_FLOOR) -> MultistepIF:
    """Multistep IF on (B*T, ...) tensors: several spikes per step, subtract reset, clamp at floor * theta.

    batch_size is set per forward by SpikingNet, so every stage may run at its own T.
    """
    return MultistepIF(
        batch_size=1,
        spike_threshold=THRESHOLD,
        min_v_mem=check_floor(floor) * THRESHOLD,
        spike_fn=MultiSpike,
        reset_fn=MembraneSubtract(),
        surrogate_grad_fn=SingleExponential(),
    )


def spiking_neurons(model: torch.nn.Module) -> list[sl.IAFSqueeze]:
    return [m for m in model.modules() if isinstance(m, sl.IAFSqueeze)]


def floor_of(model: torch.nn.Module) -> float:
    """The one floor (in thresholds) of a model's neurons; mixed floors are a one-line error."""
    floors = {round(float(n.min_v_mem) / float(n.spike_threshold), 6) for n in spiking_neurons(model)
              if n.min_v_mem is not None}
    if len(floors) != 1:
        raise SpeckMttError(f"the network's neurons have floors {sorted(floors)} (thresholds); expected one")
    return floors.pop()


def set_floor(model: torch.nn.Module, floor: float) -> None:
    """Clamp every neuron of the model at floor * its threshold (e.g. to fine-tune at another floor)."""
    floor = check_floor(floor)
    with torch.no_grad():
        for n in spiking_neurons(model):
            n.min_v_mem.fill_(floor * float(n.spike_threshold))


def sinabs_twin(neuron: sl.IAFSqueeze) -> sl.IAFSqueeze:
    """A fresh, stateless plain sinabs IAFSqueeze with the same settings (batch_size 1)."""
    return sl.IAFSqueeze(**{**neuron.arg_dict, "batch_size": 1})


def with_sinabs_neurons(module: torch.nn.Module) -> torch.nn.Module:
    """The module with every neuron replaced by its sinabs_twin, for sinabs' DynapCNN conversion
    (which copies whatever membrane state a neuron holds, and matches layer types exactly).

    A Sequential keeps sharing its other layers (weights); any other module is deep-copied.
    """
    if isinstance(module, torch.nn.Sequential):
        return torch.nn.Sequential(*[sinabs_twin(m) if isinstance(m, sl.IAFSqueeze) else m for m in module])
    module = copy.deepcopy(module)
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if isinstance(child, sl.IAFSqueeze):
                setattr(parent, name, sinabs_twin(child))
    return module
