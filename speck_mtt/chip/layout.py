"""DynapCNN layout of a bias-free SpikingNet, done by sinabs, turned into the deploy artifact.

sinabs does the work: DynapcnnNetwork groups Conv/Linear -> IAFSqueeze -> pooling into
DynapcnnLayers, turns AvgPool(k) into SumPool(k) with 1/k^2 folded into the next layer's weights
(DynapcnnLayer rescale_weights), turns a Linear into a conv covering its whole input map,
discretizes each layer with one scale (weights int8, thresholds int16), computes memory padded
to powers of two (DynapcnnLayer.memory_summary) and assigns cores by max-flow against its
Speck2e constraint table. What we add:

- A leading pooling layer (the input AvgPool of 4C2FC and VGGSNN) is refused by sinabs unless a
  DVSLayer precedes it; we put sinabs' DVSLayer (pixel array disabled) in front and sinabs folds
  the pooling into it: the chip's DVS layer sum-pools input events ("input_pool"), and the 1/k^2
  goes into the first conv's weights.
- The lower threshold (floor) is set after discretization, in chip units: sinabs derives one
  scale from the weights and both thresholds, so a deep floor would cost weight precision (and
  None, read as -32768, rounds the weights to zero). The layout discretizes with the floor at
  -theta, then sets threshold_low = round(floor * threshold_high), clipped to the 16-bit state.
- A membrane-voting head (last Linear without neuron) gets an IAFSqueeze so it becomes a core.
  It is discretized with threshold 1 (so it does not steal weight precision), then its
  thresholds are set to the int16 limits: it never fires in practice, and its accumulated input
  is v + n_spikes * threshold_high (exact with subtract reset even if it ever did fire).
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import sinabs.layers as sl
import torch
from torch import nn

from ..contracts.artifact import FORMAT, VERSION
from ..errors import FitError
from ..models import SpikingNet
from ..eventsim.kernels import STATE_MAX, STATE_MIN
from ..models.neurons import THRESHOLD, check_floor, floor_of, set_floor, with_sinabs_neurons
from .fit import (CHIP, FitProblem, LayerGeometry, check_layers, check_modules, module_label, raise_if_problems,
                  unmappable_problem)
from .samna_guard import dynapcnn

DISCRETIZATION_FLOOR = -1.0  # the floor sinabs sees while choosing a layer's scale (see above)
Target = Literal["sim", "speck2e"]


def _backend(module: str):
    """A submodule of sinabs.backend.dynapcnn, imported only after the samna guard is in place
    (importing any of them runs the package __init__, which imports samna)."""
    dynapcnn()
    return importlib.import_module(f"sinabs.backend.dynapcnn.{module}")


def core_capacity() -> list[dict[str, int]]:
    """Per-core kernel/neuron/bias memory of Speck2e, straight from sinabs' constraint table."""
    builder = _backend("chip_factory").ChipFactory(CHIP).get_config_builder()
    return [{"kernel": c.kernel_memory, "neuron": c.neuron_memory, "bias": c.bias_memory}
            for c in builder.get_constraints()]


def sinabs_input(snn: nn.Module, input_shape: Sequence[int]) -> tuple[nn.Module, bool]:
    """The module handed to DynapcnnNetwork, and whether it ends in a membrane-voting layer.

    For a Sequential: a leading pooling layer gets sinabs' DVSLayer (pixel array disabled) in
    front, which sinabs then folds the pooling into; a trailing weight layer gets a neuron (its
    thresholds are made unreachable after discretization). A Sequential shares its weight
    modules, any other module is copied; the caller's model is not changed. Neurons are replaced
    by stateless plain IAFSqueeze twins clamped at DISCRETIZATION_FLOOR: sinabs would copy (and
    discretize) whatever membrane state a previous forward left in the model, it matches layer
    types exactly, and the real floor is set after discretization.
    """
    if not isinstance(snn, nn.Sequential):
        prepared = with_sinabs_neurons(snn)
        set_floor(prepared, DISCRETIZATION_FLOOR)
        return prepared, False
    layers = list(with_sinabs_neurons(snn))
    membrane = bool(layers) and isinstance(layers[-1], (nn.Conv2d, nn.Linear))
    if membrane:
        layers.append(sl.IAFSqueeze(batch_size=1, spike_threshold=THRESHOLD, min_v_mem=DISCRETIZATION_FLOOR * THRESHOLD))
    if layers and isinstance(layers[0], (nn.AvgPool2d, sl.SumPool2d)):
        c, h, w = input_shape
        layers.insert(0, dynapcnn().DVSLayer(input_shape=(h, w), merge_polarities=(c == 1), disable_pixel_array=True))
    prepared = nn.Sequential(*layers)
    set_floor(prepared, DISCRETIZATION_FLOOR)
    return prepared, membrane


@dataclass
class Layout:
    """A converted network: the artifact plus what the report needs."""

    artifact: dict[str, Any]
    geometry: list[LayerGeometry]
    problems: list[FitProblem]  # why it does not fit Speck2e (empty: it fits)
    capacity: list[dict[str, int]]
    candidates: list[list[int]]  # cores whose memory each layer fits
    network: Any  # discretized sinabs DynapcnnNetwork (what make_config consumes)
    float_network: Any  # the same layout, undiscretized (for forwards and SynOps)
    keys: list[int] = field(default_factory=list)  # sinabs layer index of each artifact layer


def convert(snn: nn.Module, input_shape: Sequence[int], *, target: Target = "speck2e", arch: str = "custom",
            n_classes: int | None = None, recipe: str | None = None, checkpoint: str | None = None,
            names: dict[int, str] | None = None, floor: float | None = None) -> Layout:
    """Lay out snn with sinabs and check it against Speck2e; raise FitError listing every problem.

    Problems that stop sinabs (bias, BN, layer types, pooling shapes) are raised for every target;
    hardware limits only for target "speck2e" (for "sim" they are kept in Layout.problems).
    names: id(module) -> name used in messages (default: names inside snn).
    floor: lower threshold in thresholds (default: the floor snn's neurons were trained with).
    """
    input_shape = tuple(int(v) for v in input_shape)
    names = names or {}
    problems = check_modules(snn, input_shape, recipe=recipe, checkpoint=checkpoint, names=names)
    raise_if_problems(problems, f"{arch} cannot be converted to a DynapCNN layout")
    floor = check_floor(floor_of(snn) if floor is None else floor)

    prepared, membrane = sinabs_input(snn, input_shape)
    weights = [(names.get(id(m), n), m) for n, m in snn.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    backend = dynapcnn()
    try:
        float_network = backend.DynapcnnNetwork(prepared, input_shape=input_shape, discretize=False, dvs_input=False)
    except (FitError, KeyboardInterrupt):
        raise
    except Exception as exc:  # sinabs raises ValueError/TypeError/its own types for structure problems
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise_if_problems([FitProblem("network", "the structure", "what sinabs can lay out: chains of "
                                      "Conv2d/Linear -> IAFSqueeze -> optional pooling", f"refused by sinabs ({message})",
                                      "restructure the network into such chains")],
                          f"{arch} cannot be converted to a DynapCNN layout")
        raise  # unreachable: raise_if_problems raised
    network = _discretized(float_network)

    keys = sorted(k for k in network.dynapcnn_layers if isinstance(network.dynapcnn_layers[k], backend.DynapcnnLayer))
    index = {k: i for i, k in enumerate(keys)}
    destinations = network.layer_destination_map
    dvs = network.dvs_layer
    input_pool = int(dvs.pool_layer.kernel_size[0]) if dvs is not None else 1

    geometry = []
    for i, key in enumerate(keys):
        layer = network.dynapcnn_layers[key]
        name, module = weights[i] if i < len(weights) else (f"layer{i}", None)
        out_channels = layer.conv_layer.out_channels
        if module is None or out_channels != getattr(module, "out_channels", getattr(module, "out_features", None)):
            label, from_linear = f"layer {i}", False
        else:
            label, from_linear = f"layer {i}: {module_label(name, module)}", isinstance(module, nn.Linear)
        if membrane and i == len(keys) - 1:
            label += " [membrane readout]"
        geometry.append(LayerGeometry(
            index=i, label=label, from_linear=from_linear, in_shape=tuple(int(v) for v in layer.in_shape),
            out_shape=tuple(int(v) for v in layer.get_neuron_shape()),
            kernel=int(max(layer.conv_layer.kernel_size)), stride=tuple(int(s) for s in layer.conv_layer.stride),
            pools=[int(p[0]) if isinstance(p, (list, tuple)) else int(p) for p in layer.pool],
            n_destinations=sum(1 for d in destinations[key] if d >= 0),
            memory={k: int(v) for k, v in layer.memory_summary().items()}))

    capacity = core_capacity()
    mapping = _backend("mapping")
    constraints = [mapping.LayerConstraints(c["kernel"], c["neuron"], c["bias"]) for c in capacity]
    candidates = [mapping.find_chip_layers(network.dynapcnn_layers[k], constraints) for k in keys]
    speck_problems = check_layers(geometry, input_pool, capacity)
    cores: dict[int, int] = {}
    if not speck_problems:
        try:
            builder = _backend("chip_factory").ChipFactory(CHIP).get_config_builder()
            cores = builder.map_layers_to_cores(network.dynapcnn_layers)
        except ValueError:  # sinabs: "No valid mapping found"
            speck_problems = [unmappable_problem(geometry, candidates)]
    if target == "speck2e":
        raise_if_problems(speck_problems, f"{arch} does not fit {CHIP}")

    layers, float_layers = [], []
    for i, key in enumerate(keys):
        d_layer, f_layer = network.dynapcnn_layers[key], float_network.dynapcnn_layers[key]
        scale = _scale(f_layer)
        readout = "membrane" if membrane and i == len(keys) - 1 else "spikes"
        if readout == "membrane":
            _set_thresholds(d_layer.spk_layer, STATE_MAX, STATE_MIN)
            _set_thresholds(f_layer.spk_layer, STATE_MAX / scale, STATE_MIN / scale)
        else:
            high = float(d_layer.spk_layer.spike_threshold)
            _set_thresholds(d_layer.spk_layer, high, chip_floor(floor, high))
            high = float(f_layer.spk_layer.spike_threshold)
            _set_thresholds(f_layer.spk_layer, high, float_floor(floor, high, scale))
        common = {
            "stride": [int(s) for s in d_layer.conv_layer.stride],
            "padding": [int(p) for p in d_layer.conv_layer.padding],
            "readout": readout,
            "pool": [geometry[i].pools[0]] * 2 if geometry[i].pools else [1, 1],
            "input_shape": list(geometry[i].in_shape),
            "output_shape": list(geometry[i].out_shape),
            "scale": float(scale),
            "core": int(cores[key]) if target == "speck2e" else None,
            "destinations": [index[d] for d in destinations[key] if d >= 0],
            "sinabs_index": int(key),
        }
        layers.append({"weight": d_layer.conv_layer.weight.detach().clone().float(),
                       **_thresholds(d_layer.spk_layer), **common})
        float_layers.append({"weight": f_layer.conv_layer.weight.detach().clone().float(),
                             **_thresholds(f_layer.spk_layer), **common})

    head = "membrane" if membrane else "if"
    artifact = {
        "format": FORMAT, "version": VERSION, "arch": arch, "head": head,
        "n_classes": int(n_classes if n_classes is not None else geometry[-1].out_shape[0]),
        "input_shape": list(input_shape), "input_pool": input_pool,
        "input_layer": "dvs" if dvs is not None else "core",
        "discretized": True, "target": target, "chip": CHIP, "floor": floor,
        "fits_chip": not speck_problems, "fit_problems": [str(p) for p in speck_problems],
        "layers": layers, "float_layers": float_layers,
    }
    return Layout(artifact, geometry, speck_problems, capacity, candidates, network, float_network, keys)


def chip_floor(floor: float, threshold_high: float) -> float:
    """threshold_low in chip units: floor thresholds below zero, within the 16-bit state."""
    return float(max(STATE_MIN, round(floor * threshold_high)))


def float_floor(floor: float, threshold_high: float, scale: float) -> float:
    """threshold_low of a float layer: the same floor, within the 16-bit state divided by the scale."""
    return max(floor * threshold_high, STATE_MIN / scale)


def with_floor(artifact: dict[str, Any], floor: float) -> dict[str, Any]:
    """A copy of a deploy artifact whose spiking layers clamp at another floor (chip and float
    units alike), for sweeping the lower threshold without re-deploying."""
    floor = check_floor(floor)
    out = {**artifact, "floor": floor, "layers": [dict(la) for la in artifact["layers"]],
           "float_layers": [dict(la) for la in artifact.get("float_layers", [])]}
    for layer in out["layers"]:
        if layer["readout"] == "spikes":
            layer["threshold_low"] = chip_floor(floor, float(layer["threshold_high"]))
    for layer in out["float_layers"]:
        if layer["readout"] == "spikes":
            layer["threshold_low"] = float_floor(floor, float(layer["threshold_high"]), float(layer["scale"]))
    return out


def layout_model(model: SpikingNet, target: Target = "speck2e", *, recipe: str | None = None,
                 checkpoint: str | None = None, floor: float | None = None) -> Layout:
    """Layout of a SpikingNet (its to_sequential(), input shape and head)."""
    layout = convert(model.to_sequential(), model.input_shape, target=target, arch=model.name,
                     n_classes=model.n_classes, recipe=recipe, checkpoint=checkpoint,
                     names={id(m): n for n, m in model.named_modules()}, floor=floor)
    if layout.artifact["head"] != model.head:
        raise FitError(f"{model.name}: head {model.head!r} but the layout ends in a "
                       f"{layout.artifact['head']!r} layer; the last block must match the head")
    return layout


def _discretized(float_network):
    """A copy of the float layout discretized layer by layer, exactly as DynapcnnLayer does with
    discretize=True (sinabs' discretize_conv_spike_ after the pooling rescale); saves a second
    conversion, which traces the whole network (seconds for VGGSNN)."""
    discretize = _backend("discretize")
    network = copy.deepcopy(float_network)
    for layer in network.dynapcnn_layers.values():
        if isinstance(layer, dynapcnn().DynapcnnLayer):
            discretize.discretize_conv_spike_(layer.conv_layer, layer.spk_layer, to_int=False)
            layer._discretize = True
    return network


def _scale(layer) -> float:
    """sinabs' own discretization scale of a (float) DynapcnnLayer: min of the int8 weight scale
    and the int16 threshold scale (discretize.py, no bias), taken before the real floor is set."""
    d = _backend("discretize")
    spk = layer.spk_layer
    thresholds = torch.tensor((float(spk.min_v_mem), float(spk.spike_threshold)))
    return float(min(d.determine_discretization_scale(layer.conv_layer.weight.detach(), d.DYNAPCNN_WEIGHT_PRECISION_BITS),
                     d.determine_discretization_scale(thresholds, d.DYNAPCNN_STATE_PRECISION_BITS)))


def _thresholds(spk: sl.IAFSqueeze) -> dict[str, float]:
    return {"threshold_high": float(spk.spike_threshold), "threshold_low": float(spk.min_v_mem)}


def _set_thresholds(spk: sl.IAFSqueeze, high: float, low: float) -> None:
    spk.spike_threshold = nn.Parameter(torch.tensor(float(high)), requires_grad=False)
    spk.min_v_mem = nn.Parameter(torch.tensor(float(low)), requires_grad=False)
