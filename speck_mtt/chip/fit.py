"""Speck2e fit checks: every reason a network cannot be mapped, one line each, with a fix.

sinabs converts a network into DynapcnnLayers and knows the per-core memory table, but it stops
at the first structural problem, and the hardware limits (channels, map size, kernel size,
stride, pooling, fan-out) are only checked by the real samna when a configuration is validated.
Here we collect every problem at once, offline, so the user learns all of them before touching a
devkit: pre-conversion checks on the torch modules (what would make sinabs refuse the network),
then post-conversion checks on sinabs' DynapcnnLayers against docs/design.md#speck2e-limits and sinabs' own
constraint table (chips/dynapcnn.py get_constraints).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sinabs.layers as sl
from torch import nn

from ..errors import FitError

CHIP = "speck2e"
N_CORES = 9
MAX_CHANNELS = 1024
MAX_KERNEL = 16
MAX_OUTPUT_MAP = 64
STRIDES = (1, 2, 4, 8)
POOLS = (1, 2, 4)
DVS_SIZE = 128
DVS_POOLS = (1, 2, 4)
MAX_FAN_OUT = 2

# Modules sinabs' DynapCNN conversion accepts (Flatten/Identity/Dropout only carry shape).
_SHAPE_ONLY = (nn.Flatten, nn.Identity, nn.Dropout, nn.Dropout2d)
_POOLING = (nn.AvgPool2d, sl.SumPool2d)
_WEIGHT = (nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class FitProblem:
    """One reason a network does not map: where, what, the limit, the value, and what to do."""

    layer: str
    what: str
    limit: str
    value: str
    suggestion: str

    def __str__(self) -> str:
        return f"{self.layer}: {self.what} is {self.value}, limit {self.limit}; {self.suggestion}"


def bias_removal_hint(recipe: str | None = None, checkpoint: str | None = None) -> str:
    return (f"run `speck-mtt train {recipe or 'RECIPE'} --phase bias-removal --from {checkpoint or 'CKPT'}` "
            "to absorb BN and fine-tune without biases")


def raise_if_problems(problems: Sequence[FitProblem], what: str) -> None:
    """Raise FitError listing every problem, one per line (the first line says how many)."""
    if problems:
        lines = [f"{what} ({len(problems)} problem{'s' if len(problems) > 1 else ''}):"]
        lines += [f"  - {p}" for p in problems]
        error = FitError("\n".join(lines))
        error.problems = list(problems)  # type: ignore[attr-defined]
        raise error


def module_label(name: str, module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        k = "x".join(map(str, module.kernel_size))
        return f"{name} (Conv2d {module.in_channels}->{module.out_channels}, {k})"
    if isinstance(module, nn.Linear):
        return f"{name} (Linear {module.in_features}->{module.out_features})"
    return f"{name} ({type(module).__name__})"


def check_modules(snn: nn.Module, input_shape: Sequence[int], *, recipe: str | None = None,
                  checkpoint: str | None = None, names: dict[int, str] | None = None) -> list[FitProblem]:
    """Problems visible on the torch modules: biases, BN, layer types, pooling/kernel shapes.

    These are the ones that would make sinabs refuse the network or silently keep a bias, so
    they are checked for every target (the simulator also runs the DynapCNN layout).
    names: id(module) -> name used in messages (default: names inside snn).
    """
    problems: list[FitProblem] = []
    hint = bias_removal_hint(recipe, checkpoint)
    names = names or {}
    leaves = [(names.get(id(m), n), m) for n, m in snn.named_modules() if not list(m.children()) and n]
    for name, module in leaves:
        label = module_label(name, module)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            problems.append(FitProblem(label, "an un-absorbed BatchNorm", "none: Speck has no BN",
                                       "present", hint))
        elif isinstance(module, _WEIGHT):
            if module.bias is not None:
                problems.append(FitProblem(label, "the bias", "none: a bias becomes a slow-clock leak",
                                           f"present ({module.bias.numel()} values)", hint))
            if isinstance(module, nn.Conv2d):
                problems += _conv_shape_problems(label, module)
        elif isinstance(module, _POOLING):
            problems += _pool_shape_problems(label, module)
        elif isinstance(module, sl.IAFSqueeze):
            continue
        elif isinstance(module, (sl.IAF, sl.LIF, sl.LIFSqueeze)) or isinstance(module, sl.StatefulLayer):
            problems.append(FitProblem(label, "the neuron type", "sinabs.layers.IAFSqueeze",
                                       type(module).__name__,
                                       "use speck_mtt.models.neurons.multistep_if (IAFSqueeze, no leak)"))
        elif not isinstance(module, _SHAPE_ONLY):
            problems.append(FitProblem(label, "the layer type",
                                       "Conv2d/Linear -> IAFSqueeze -> AvgPool2d/SumPool2d",
                                       type(module).__name__,
                                       "remove it or replace it by a supported layer"))
    first = leaves[0][1] if leaves else None
    if isinstance(first, _POOLING):  # input pooling is done by the DVS layer
        c, h, w = input_shape
        if c > 2 or h > DVS_SIZE or w > DVS_SIZE:
            problems.append(FitProblem(module_label(leaves[0][0], first), "the input pooled by the DVS layer",
                                       f"at most 2x{DVS_SIZE}x{DVS_SIZE} (the DVS layer)", f"{c}x{h}x{w}",
                                       "pool in the data pipeline or start the network with a conv"))
    return problems


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)  # type: ignore[return-value]


def _conv_shape_problems(label: str, conv: nn.Conv2d) -> list[FitProblem]:
    problems = []
    if conv.kernel_size[0] != conv.kernel_size[1]:
        problems.append(FitProblem(label, "the kernel shape", "square kernels",
                                   "x".join(map(str, conv.kernel_size)), "use a square kernel"))
    if conv.dilation != (1, 1) or conv.groups != 1:
        problems.append(FitProblem(label, "the dilation/groups", "dilation 1, groups 1",
                                   f"dilation {conv.dilation}, groups {conv.groups}", "use a plain convolution"))
    if conv.stride[0] != conv.stride[1]:
        problems.append(FitProblem(label, "the stride", "equal strides in {1,2,4,8}",
                                   f"{conv.stride}", "use the same stride in both directions"))
    if isinstance(conv.padding, str):
        problems.append(FitProblem(label, "the padding", "explicit integers", conv.padding,
                                   "give the padding as integers"))
    return problems


def _pool_shape_problems(label: str, pool: nn.Module) -> list[FitProblem]:
    kernel = _pair(pool.kernel_size)
    stride = _pair(pool.stride) if pool.stride is not None else kernel
    padding = getattr(pool, "padding", 0)
    problems = []
    if kernel[0] != kernel[1] or stride != kernel or _pair(padding) != (0, 0):
        problems.append(FitProblem(label, "the pooling", "square, stride = kernel, no padding",
                                   f"kernel {kernel}, stride {stride}, padding {padding}",
                                   f"use AvgPool2d(k) or SumPool2d(k) with k in {POOLS}"))
    return problems


@dataclass
class LayerGeometry:
    """What the post-conversion checks need to know about one DynapcnnLayer."""

    index: int
    label: str
    from_linear: bool
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: int
    stride: tuple[int, int]
    pools: list[int]
    n_destinations: int
    memory: dict[str, int]


def check_layers(layers: Sequence[LayerGeometry], input_pool: int, capacity: Sequence[dict[str, int]]) -> list[FitProblem]:
    """Hardware limits (docs/design.md#speck2e-limits) on the converted layers; capacity: sinabs' per-core table."""
    problems: list[FitProblem] = []
    if input_pool not in DVS_POOLS:
        problems.append(FitProblem("input (DVS layer)", "the input pooling", f"one of {DVS_POOLS}", str(input_pool),
                                   "pool the input by 1, 2 or 4 (more pooling goes after the first layer)"))
    max_kernel_mem = max(c["kernel"] for c in capacity)
    max_neuron_mem = max(c["neuron"] for c in capacity)
    for g in layers:
        c_out, h_out, w_out = g.out_shape
        for side, channels in (("input", g.in_shape[0]), ("output", c_out)):
            if channels > MAX_CHANNELS:
                problems.append(FitProblem(g.label, f"the number of {side} channels", str(MAX_CHANNELS),
                                           str(channels), "use fewer channels"))
        if g.kernel > MAX_KERNEL:
            if g.from_linear:
                problems.append(FitProblem(g.label, "the map before this Linear (its kernel on chip)",
                                           f"{MAX_KERNEL}x{MAX_KERNEL}", f"{g.in_shape[1]}x{g.in_shape[2]}",
                                           "add pooling or strided convs before Flatten"))
            else:
                problems.append(FitProblem(g.label, "the kernel size", f"{MAX_KERNEL}x{MAX_KERNEL}",
                                           f"{g.kernel}x{g.kernel}", "use a smaller kernel"))
        if h_out > MAX_OUTPUT_MAP or w_out > MAX_OUTPUT_MAP:
            problems.append(FitProblem(g.label, "the output map", f"{MAX_OUTPUT_MAP}x{MAX_OUTPUT_MAP}",
                                       f"{h_out}x{w_out}", "pool the input or use stride 2 in this layer"))
        if g.stride[0] not in STRIDES or g.stride[1] not in STRIDES:
            problems.append(FitProblem(g.label, "the stride", f"one of {STRIDES}", f"{g.stride[0]}x{g.stride[1]}",
                                       "use stride 1, 2, 4 or 8"))
        for pool in sorted(set(g.pools)):
            if pool not in POOLS:
                problems.append(FitProblem(g.label, "the output pooling", f"one of {POOLS}", str(pool),
                                           "pool by 1, 2 or 4 (split larger pooling across layers)"))
        if g.memory["kernel"] > max_kernel_mem:
            problems.append(FitProblem(g.label, "the kernel memory", f"{max_kernel_mem:,} words (largest core)",
                                       f"{g.memory['kernel']:,} words",
                                       "use fewer input/output channels or a smaller kernel "
                                       "(memory = C_in * 2^ceil(log2 k*k) * 2^ceil(log2 C_out))"))
        if g.memory["neuron"] > max_neuron_mem:
            problems.append(FitProblem(g.label, "the neuron memory", f"{max_neuron_mem:,} neurons (largest core)",
                                       f"{g.memory['neuron']:,} neurons",
                                       "use fewer channels or a smaller output map "
                                       "(memory = C_out * 2^ceil(log2 H) * 2^ceil(log2 W))"))
        if g.memory["bias"] > min(c["bias"] for c in capacity):
            problems.append(FitProblem(g.label, "the bias memory", str(min(c["bias"] for c in capacity)),
                                       str(g.memory["bias"]), bias_removal_hint()))
        if g.n_destinations > MAX_FAN_OUT:
            problems.append(FitProblem(g.label, "the fan-out (destination layers)", str(MAX_FAN_OUT),
                                       str(g.n_destinations), "send this layer's output to at most 2 layers"))
    if len(layers) > len(capacity):
        problems.append(FitProblem("network", "the number of layers (one core each)", str(len(capacity)),
                                   str(len(layers)), "merge or remove layers"))
    return problems


def unmappable_problem(layers: Sequence[LayerGeometry], candidates: Sequence[list[int]]) -> FitProblem:
    """Every layer fits some core, but no one-to-one assignment exists (max-flow found none)."""
    detail = "; ".join(f"layer {g.index} fits cores {c or 'none'}" for g, c in zip(layers, candidates))
    return FitProblem("network", "the core assignment", "one distinct core per layer", f"impossible ({detail})",
                      "shrink the layers that compete for the same large cores")
