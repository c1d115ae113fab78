"""Probing a SpikingNet on frames: per-sample, per-step spikes and SynOps of every layer, batch
iteration over a frame dataset, and a checkpoint with its test split as frames. Early exit, the
configuration search and `measure --search-config` are built on these.

SynOps: events arriving at every Conv2d/Linear times their fan-out (the number of target neurons
each input neuron reaches, sinabs.hooks.conv_connection_map; out_features for a Linear). A
preceding AvgPool2d(k) is counted as the chip's SumPool(k) (its input times k*k), so the first
layer's SynOps come from the input events, as in the simulator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sinabs.layers as sl
import torch
from sinabs.hooks import conv_connection_map
from torch import nn

from ..errors import SpeckMttError
from ..models import SpikingNet


def _layer_plan(model: SpikingNet) -> tuple[list[tuple[str, nn.Module, int]], list[tuple[str, nn.Module]]]:
    """Weight layers with their block index and the sum-pool factor before them; IF layers."""
    weights, neurons = [], []
    for b, block in enumerate(model.blocks):
        pool = 1
        for i, layer in enumerate(block):
            name = f"blocks.{b}.{i}"
            if isinstance(layer, nn.AvgPool2d):
                k = layer.kernel_size
                pool *= k * k if isinstance(k, int) else k[0] * k[1]
            elif isinstance(layer, (nn.Conv2d, nn.Linear)):
                weights.append((name, layer, b, pool))
                pool = 1
            elif isinstance(layer, sl.IAFSqueeze):
                neurons.append((name, layer, b))
    return weights, neurons


class SpikeRecorder:
    """Context manager: per-sample, per-step spikes of every IAFSqueeze and SynOps of every
    Conv2d/Linear during SpikingNet forwards. After a forward, `take(batch)` returns
    (spikes, synops): lists (one per layer) of (B, T_layer) tensors, and clears the buffers.
    """

    def __init__(self, model: SpikingNet):
        self.model = model
        self.weights, self.neurons = _layer_plan(model)
        self.weight_names = [w[0] for w in self.weights]
        self.neuron_names = [n[0] for n in self.neurons]
        self.weight_block = [w[2] for w in self.weights]
        self.neuron_block = [n[2] for n in self.neurons]
        self._fan: dict[int, torch.Tensor] = {}
        self._spikes: list[torch.Tensor | None] = []
        self._synops: list[torch.Tensor | None] = []
        self._handles: list[Any] = []

    def _fan_out(self, i: int, layer: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fan = self._fan.get(i)
        if fan is None or fan.shape != x.shape[1:]:
            if isinstance(layer, nn.Conv2d):
                fan = conv_connection_map(layer, x.shape[1:], y.shape[1:], x.device)[0]
            else:
                fan = torch.full(x.shape[1:], float(layer.out_features), device=x.device)
            self._fan[i] = fan
        return fan

    def __enter__(self) -> SpikeRecorder:
        self._spikes = [None] * len(self.neurons)
        self._synops = [None] * len(self.weights)
        for i, (_, layer, _, pool) in enumerate(self.weights):
            def w_hook(module, args, output, i=i, pool=pool):
                x = args[0].detach()
                self._synops[i] = (x * pool * self._fan_out(i, module, x, output)).flatten(1).sum(1)
            self._handles.append(layer.register_forward_hook(w_hook))
        for i, (_, layer, _) in enumerate(self.neurons):
            def n_hook(module, args, output, i=i):
                self._spikes[i] = output.detach().flatten(1).sum(1)
            self._handles.append(layer.register_forward_hook(n_hook))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def take(self, batch: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per layer (B, T_layer): the last forward's counts, reshaped from sinabs' (B*T,) layout."""
        def split(v: torch.Tensor | None) -> torch.Tensor:
            if v is None:
                raise SpeckMttError("no forward was recorded; run the model inside the recorder")
            return v.reshape(batch, -1)
        spikes, synops = [split(v) for v in self._spikes], [split(v) for v in self._synops]
        self._spikes = [None] * len(self.neurons)
        self._synops = [None] * len(self.weights)
        return spikes, synops


def batches(dataset: torch.utils.data.Dataset, batch_size: int, limit: int | None) -> torch.utils.data.DataLoader:
    """The first `limit` samples (all when None) in order, in batches; an empty dataset is an error."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        raise SpeckMttError("the dataset is empty; pass a split/limit with at least one sample")
    sub = torch.utils.data.Subset(dataset, range(n))
    return torch.utils.data.DataLoader(sub, batch_size=batch_size, shuffle=False)


def check_input(model: SpikingNet, frames: torch.Tensor) -> None:
    """Frames of another dataset than the model's are a one-line error, not a shape mismatch deep in torch."""
    if tuple(frames.shape[2:]) != tuple(model.input_shape):
        raise SpeckMttError(f"frames of shape {tuple(frames.shape[2:])} do not fit {model.name}, which takes "
                            f"{tuple(model.input_shape)}; use the dataset the model was trained on")



def checkpoint_and_test_frames(checkpoint: Path, dataset: str | None = None, data_dir: Path | None = None,
                               t_max: int | None = None, samples: int | None = None
                               ) -> tuple[SpikingNet, torch.utils.data.Dataset, int, str]:
    """The model of a `speck-mtt train` checkpoint and its test split as frames at T_max
    (dataset and T_max from the checkpoint's recipe unless given)."""
    from ..checkpoint import dataset_of, load_checkpoint, model_from_checkpoint, t_max_of
    from ..data import frame_dataset, resolve_dataset

    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt, checkpoint)
    name = dataset or dataset_of(ckpt)
    if not name:
        raise SpeckMttError(f"{checkpoint}: no dataset recorded in the checkpoint; pass --dataset")
    t = t_max or t_max_of(ckpt)
    if not t:
        raise SpeckMttError(f"{checkpoint}: no T_max recorded in the checkpoint; pass --t-max")
    name = resolve_dataset(name, data_dir)
    return model, frame_dataset(name, "test", int(t), data_dir=data_dir, limit=samples), int(t), name
