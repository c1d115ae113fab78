"""The training neuron (SPEC §1): sinabs multistep IF, composed from sinabs' own pieces."""

from __future__ import annotations

import sinabs.layers as sl
from sinabs.activation import MembraneSubtract, MultiSpike, SingleExponential

THRESHOLD = 1.0
MIN_V_MEM = -1.0  # never None: sinabs would use -32768 and discretized weights round to zero


def multistep_if() -> sl.IAFSqueeze:
    """Multistep IF on (B*T, ...) tensors: several spikes per step, subtract reset, floor at -1.

    batch_size is set per forward by SpikingNet, so every stage may run at its own T.
    """
    return sl.IAFSqueeze(
        batch_size=1,
        spike_threshold=THRESHOLD,
        min_v_mem=MIN_V_MEM,
        spike_fn=MultiSpike,
        reset_fn=MembraneSubtract(),
        surrogate_grad_fn=SingleExponential(),
    )
