"""Bias-free multistep-IF networks of docs/design.md#networks, as blocks that MTT cuts into stages.

A block is one weight layer with what surrounds it (pool before, BN, neuron). Blocks run on
(B*T, C, H, W) tensors; SpikingNet.forward gives every stage its own T and puts a TTM between
stages. to_sequential() flattens the blocks into the nn.Sequential that sinabs' DynapCNN
conversion and the simulator consume.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, get_args

import sinabs
import sinabs.layers as sl
import torch
from sinabs.activation import SingleSpike
from torch import nn

from ..errors import SpeckMttError
from ..timegroups import resample_time
from .neurons import DEFAULT_FLOOR, multistep_if, set_floor, with_sinabs_neurons

Head = Literal["if", "membrane"]
HEADS: tuple[str, ...] = get_args(Head)


def check_head(head: str) -> str:
    if head not in HEADS:
        raise SpeckMttError(f"unknown head {head!r}; choose if (spike count) or membrane")
    return head


def conv(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class SpikingNet(nn.Module):
    """A feed-forward SNN of blocks. Output: (B, T_last, n_classes); classify by the time mean.

    head == "if": the last block ends in an IF neuron and the class is the most-spiking output.
    head == "membrane": the last block has no neuron; its time-summed input is the membrane of a
    non-firing IF, and the class is its argmax.
    """

    def __init__(self, name: str, blocks: Sequence[nn.Sequential], head: Head,
                 input_shape: tuple[int, int, int], n_classes: int, granularity: int = 1):
        super().__init__()
        self.name = name
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.input_shape = tuple(input_shape)
        self.n_classes = n_classes
        self.granularity = granularity

    def stages(self, granularity: int | None = None) -> list[list[int]]:
        """Block indices per stage: chunks of g blocks; a shorter remainder joins the last stage."""
        g = granularity or self.granularity
        n = len(self.blocks)
        if g < 1:
            raise SpeckMttError(f"granularity must be >= 1 block per stage, got {g}")
        chunks = [list(range(i, min(i + g, n))) for i in range(0, n, g)]
        if len(chunks) > 1 and len(chunks[-1]) < g:
            chunks[-2].extend(chunks.pop())
        return chunks

    def n_stages(self, granularity: int | None = None) -> int:
        return len(self.stages(granularity))

    def forward(self, x: torch.Tensor, config: Sequence[int] | None = None,
                granularity: int | None = None) -> torch.Tensor:
        """x: (B, T_in, C, H, W) event counts. config: T of each stage (default: T_in everywhere).

        Before stage s the TTM resamples time to config[s] (identity when equal), so config[0]
        different from T_in resamples the input frames themselves.
        """
        stages = self.stages(granularity)
        batch, t_in = x.shape[:2]
        config = list(config) if config is not None else [t_in] * len(stages)
        if len(config) != len(stages):
            raise SpeckMttError(f"{self.name}: temporal configuration {config} has {len(config)} entries "
                                f"but the network has {len(stages)} stages")
        self.reset_states()
        for module in self.modules():
            if isinstance(module, sl.IAFSqueeze):
                module.batch_size = batch
        for t, stage in zip(config, stages):
            x = resample_time(x, int(t), dim=1)
            h = x.flatten(0, 1)
            for b in stage:
                h = self.blocks[b](h)
            x = h.unflatten(0, (batch, int(t)))
        return x

    def reset_states(self) -> None:
        sinabs.reset_states(self)

    def to_sequential(self) -> nn.Sequential:
        """The flat layer list for sinabs' DynapCNN conversion: weight and pooling modules shared,
        neurons as plain stateless sinabs IAFSqueeze twins (neurons.with_sinabs_neurons)."""
        return with_sinabs_neurons(nn.Sequential(*[layer for block in self.blocks for layer in block]))

    def n_weights(self) -> int:
        """Weights of conv/linear layers (what the paper counts; BN parameters excluded)."""
        return sum(m.weight.numel() for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def _block(*layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(*layers)


def _readout(linear: nn.Linear, head: Head, floor: float) -> nn.Sequential:
    """The last block: the classifier layer, with an IF neuron for spike-count voting ("if") or
    without one for membrane voting ("membrane")."""
    return _block(linear, multistep_if(floor)) if check_head(head) == "if" else _block(linear)


def nmnist_3c1fc(bn: bool = False, floor: float = DEFAULT_FLOOR, head: Head = "if") -> SpikingNet:
    """3C1FC(W16), 6,160 weights, input 2x34x34, IF-voting head (the paper's; or membrane voting);
    neurons clamp at floor * theta."""
    norm: Callable[[int], nn.Module] = (lambda c: nn.BatchNorm2d(c)) if bn else (lambda c: nn.Identity())
    blocks = [
        _block(conv(2, 8), norm(8), multistep_if(floor)),
        _block(nn.AvgPool2d(2), conv(8, 16), norm(16), multistep_if(floor)),
        _block(nn.AvgPool2d(2), conv(16, 16, stride=2), norm(16), multistep_if(floor)),
        _block(nn.Flatten(), *_readout(nn.Linear(256, 10, bias=False), head, floor)),
    ]
    return SpikingNet("nmnist_3c1fc", _strip_identity(blocks), head, (2, 34, 34), 10, granularity=1)


def gesture_4c2fc(bn: bool = True, floor: float = DEFAULT_FLOOR, head: Head = "membrane") -> SpikingNet:
    """4C2FC(W32), 48,592 weights (+176 BN), input 2x128x128, membrane-voting head (the paper's)."""
    norm = (lambda c: nn.BatchNorm2d(c)) if bn else (lambda c: nn.Identity())
    blocks = [
        _block(nn.AvgPool2d(2), conv(2, 8, stride=2), norm(8), multistep_if(floor)),
        _block(nn.AvgPool2d(2), conv(8, 16), norm(16), multistep_if(floor)),
        _block(nn.AvgPool2d(2), conv(16, 32), norm(32), multistep_if(floor)),
        _block(nn.AvgPool2d(2), conv(32, 32), norm(32), multistep_if(floor)),
        _block(nn.Flatten(), nn.Linear(512, 64, bias=False), multistep_if(floor)),
        _readout(nn.Linear(64, 11, bias=False), head, floor),
    ]
    return SpikingNet("gesture_4c2fc", _strip_identity(blocks), head, (2, 128, 128), 11, granularity=2)


def vggsnn(bn: bool = True, input_size: int = 128, floor: float = DEFAULT_FLOOR,
           head: Head = "membrane") -> SpikingNet:
    """VGGSNN for CIFAR10-DVS (about 9.2M weights), membrane-voting head (the paper's); too large for Speck."""
    norm = (lambda c: nn.BatchNorm2d(c)) if bn else (lambda c: nn.Identity())
    pool_in = max(1, input_size // 32)  # 128 -> 32 (the paper's AvgPool4); 48 (SOTA setting) unpooled
    side = input_size // pool_in
    if input_size % pool_in or side % 16:
        raise SpeckMttError(f"vggsnn needs an input size of 128 or a multiple of 16 below 64, got {input_size}")
    widths = [(2, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 512), (512, 512)]
    blocks = []
    for i, (c_in, c_out) in enumerate(widths):
        layers: list[nn.Module] = []
        if i == 0 and pool_in > 1:
            layers.append(nn.AvgPool2d(pool_in))
        elif i in (2, 4, 6):
            layers.append(nn.AvgPool2d(2))
        layers += [conv(c_in, c_out), norm(c_out), multistep_if(floor)]
        blocks.append(_block(*layers))
    blocks.append(_block(nn.AvgPool2d(2), nn.Flatten(),
                         *_readout(nn.Linear(512 * (side // 16) ** 2, 10, bias=False), head, floor)))
    return SpikingNet("vggsnn", _strip_identity(blocks), head, (2, input_size, input_size), 10, granularity=2)


def nir_net(layers: Sequence[dict], input_shape: Sequence[int], n_classes: int, head: Head,
            bn: bool = False, floor: float | None = None) -> SpikingNet:
    """A bias-free network described layer by layer, as imported from a NIR graph
    (speck_mtt.chip.nir_io writes the description; it is the checkpoint's arch_kwargs, so every
    command that rebuilds a model from a checkpoint rebuilds this one too).

    Layers: {"kind": "conv", "in", "out", "kernel", "stride", "padding", "dilation", "groups"},
    {"kind": "linear", "in", "out"}, {"kind": "avgpool" | "sumpool", "kernel", "stride"},
    {"kind": "flatten"}, {"kind": "if", "threshold", "floor", "spike": "multi" | "single"} (floor in
    thresholds, as everywhere; the floor argument, like the other builders', overrides every
    layer's). A block closes after each neuron; trailing layers form the last block (the
    membrane-voting readout) or join the one before.
    """
    if bn:
        raise SpeckMttError("a network imported from NIR has no BatchNorm (bn must be False)")
    blocks: list[list[nn.Module]] = [[]]
    for spec in layers:
        blocks[-1].append(_nir_layer(spec, floor))
        if spec["kind"] == "if":
            blocks.append([])
    tail = blocks.pop()
    if blocks and not any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in tail):
        blocks[-1].extend(tail)  # shape-only layers after the last neuron
    else:
        blocks.append(tail)
    return SpikingNet("nir", [_block(*b) for b in blocks], head, tuple(input_shape), n_classes, granularity=1)


def _nir_layer(spec: dict, floor: float | None) -> nn.Module:
    kind = spec["kind"]
    if kind == "conv":
        return nn.Conv2d(spec["in"], spec["out"], tuple(spec["kernel"]), stride=tuple(spec["stride"]),
                         padding=tuple(spec["padding"]), dilation=tuple(spec["dilation"]), groups=spec["groups"],
                         bias=False)
    if kind == "linear":
        return nn.Linear(spec["in"], spec["out"], bias=False)
    if kind == "avgpool":
        return nn.AvgPool2d(tuple(spec["kernel"]), stride=tuple(spec["stride"]))
    if kind == "sumpool":
        return sl.SumPool2d(tuple(spec["kernel"]), stride=tuple(spec["stride"]))
    if kind == "flatten":
        return nn.Flatten()
    if kind == "if":
        floor = spec["floor"] if floor is None else floor
        neuron = multistep_if(floor)
        with torch.no_grad():
            neuron.spike_threshold.fill_(float(spec["threshold"]))
        set_floor(neuron, floor)  # floor * this layer's threshold
        if spec["spike"] == "single":
            neuron.spike_fn = SingleSpike
        return neuron
    raise SpeckMttError(f"unknown layer kind {kind!r} in an imported network; re-import the NIR file")


def switch_head(net: SpikingNet, head: Head, floor: float) -> SpikingNet:
    """The same network with the other readout: the last block loses its IF neuron (membrane
    voting) or gains one at threshold 1 (spike-count voting). Weights are shared, not copied."""
    if check_head(head) == net.head:
        return net
    last = list(net.blocks[-1])
    net.blocks[-1] = _block(*last[:-1]) if head == "membrane" else _block(*last, multistep_if(floor))
    net.head = head
    return net


def _strip_identity(blocks: list[nn.Sequential]) -> list[nn.Sequential]:
    return [nn.Sequential(*[m for m in b if not isinstance(m, nn.Identity)]) for b in blocks]


ARCHITECTURES: dict[str, Callable[..., SpikingNet]] = {
    "nmnist_3c1fc": nmnist_3c1fc,
    "gesture_4c2fc": gesture_4c2fc,
    "vggsnn": vggsnn,
    "nir": nir_net,
}


def build_model(arch: str, **kwargs) -> SpikingNet:
    if arch not in ARCHITECTURES:
        raise SpeckMttError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**kwargs)
