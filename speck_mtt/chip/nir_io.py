"""NIR export and import: move a Speck-ready network to and from other SNN tools.

NIR (the `nir` package; sinabs, snnTorch, Norse, Rockpool and Lava read and write it) describes a
network as a graph of Conv2d / Linear / pooling / Flatten / neuron nodes in an HDF5 file. We
build and read the graph with nir itself, not through sinabs.to_nir / from_nir: to_nir has no
AvgPool2d (our networks pool by averaging) and writes bias-free Linears as zero-bias Affines,
and from_nir makes single-spike IAFSqueeze layers with the floor at -threshold and keeps biases.

NIR's IF node has r and v_threshold only. What it has no field for travels as metadata under the
key "speck_mtt" (nir.write/read keep the `metadata` dict of a graph and of an IF node):
- each IF node: min_v_mem, the lower clamp in the node's voltage units; multi_spike, several
  spikes per step with subtract reset (our training neuron; NIR's IF emits at most one);
- the graph: format, version, head ("if": the class is the most-spiking output neuron,
  "membrane": the last layer has no neuron and the class is its largest accumulated input),
  n_classes, and where the checkpoint knows them its arch, dataset and frames.
A graph written by another tool gets documented defaults: floor DEFAULT_FLOOR thresholds (the
project's default, models.neurons; `deploy --floor` overrides it), one spike per step (NIR's
definition), and the head read from the structure (a last weight layer without a neuron, or
followed by a non-leaking integrator node, is membrane voting).

Import accepts one chain Input -> ... -> Output of Conv2d, Linear or Affine (zero bias),
AvgPool2d / SumPool2d, Flatten, IF, LIF without leak (tau = inf) and, last, a non-leaking LI or an
I node as the membrane readout. Anything else is refused, one line per node. The result is a
speck-mtt checkpoint of architecture "nir" (models.networks.nir_net), so deploy, measure and the
devkit path treat it exactly as a trained checkpoint.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nir
import numpy as np
import sinabs.layers as sl
import torch
from sinabs.activation import MembraneSubtract, MultiSpike
from torch import nn

from ..checkpoint import load_checkpoint, make_checkpoint, meta_value, model_from_checkpoint, recipe_name_of, t_max_of
from ..errors import SpeckMttError
from ..files import atomic_write
from ..models import SpikingNet, build_model
from ..models.neurons import DEFAULT_FLOOR, FLOOR_RANGE
from .fit import FitProblem, check_modules, raise_if_problems

FORMAT = "speck-mtt-nir"
VERSION = 1
META = "speck_mtt"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_WEIGHT_NODES = (nir.Conv2d, nir.Linear, nir.Affine)
_READOUT_NODES = (nir.LI, nir.I)


# ---------------------------------------------------------------- export


def export_checkpoint(checkpoint: Path, out: Path) -> dict[str, Any]:
    """Write the checkpoint's network (the one `speck-mtt deploy` lays out) to out as a NIR graph.

    Refuses, like deploy, a network with BN or biases (run the bias-removal phase first).
    Returns the graph's speck_mtt metadata.
    """
    checkpoint = Path(checkpoint)
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt, checkpoint).eval()
    problems = check_modules(model.to_sequential(), model.input_shape, checkpoint=str(checkpoint),
                             recipe=recipe_name_of(ckpt),
                             names={id(m): n for n, m in model.named_modules()})
    raise_if_problems(problems, f"{model.name} cannot be exported as a Speck-ready NIR graph")
    info = {"arch": model.name, "dataset": meta_value(ckpt, "dataset"), "frames": t_max_of(ckpt)}
    graph = to_nir_graph(model, {k: v for k, v in info.items() if v is not None})
    write_nir(graph, out)
    return dict(graph.metadata[META])


def to_nir_graph(model: SpikingNet, extra: dict[str, Any] | None = None) -> nir.NIRGraph:
    """The model as a chain of NIR nodes named like its modules, with our metadata."""
    names = {id(m): n for n, m in model.named_modules()}
    shape = tuple(int(v) for v in model.input_shape)
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array(shape)})}
    edges, previous = [], "input"
    x = torch.zeros(1, *shape)
    with torch.no_grad():
        for module in (m for block in model.blocks for m in block):
            name = names[id(module)]
            nodes[name] = _node(name, module, tuple(x.shape[1:]))
            x = x if isinstance(module, sl.IAFSqueeze) else module(x)
            edges.append((previous, name))
            previous = name
    nodes["output"] = nir.Output(output_type={"output": np.array(x.shape[1:])})
    edges.append((previous, "output"))
    meta = {"format": FORMAT, "version": VERSION, "head": model.head, "n_classes": int(model.n_classes),
            **(extra or {})}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={META: meta})


def _node(name: str, module: nn.Module, in_shape: tuple[int, ...]) -> nir.NIRNode:
    if isinstance(module, nn.Conv2d):
        return nir.Conv2d(input_shape=in_shape[1:], weight=_array(module.weight), stride=module.stride,
                          padding=module.padding, dilation=module.dilation, groups=module.groups,
                          bias=np.zeros(module.out_channels, np.float32))
    if isinstance(module, nn.Linear):
        return nir.Linear(weight=_array(module.weight))
    if isinstance(module, (nn.AvgPool2d, sl.SumPool2d)):
        kernel = _pair(module.kernel_size)
        pool = nir.AvgPool2d if isinstance(module, nn.AvgPool2d) else nir.SumPool2d
        return pool(kernel_size=np.array(kernel), stride=np.array(_pair(module.stride or kernel)),
                    padding=np.array(_pair(getattr(module, "padding", 0))))
    if isinstance(module, nn.Flatten):
        end = module.end_dim - 1 if module.end_dim > 0 else module.end_dim
        return nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=module.start_dim - 1, end_dim=end)
    if isinstance(module, sl.IAFSqueeze):
        if not isinstance(module.reset_fn, MembraneSubtract) or module.min_v_mem is None:
            raise SpeckMttError(f"{name}: only subtract-reset neurons with a finite min_v_mem can be exported "
                                "(NIR's IF resets by subtraction); use speck_mtt.models.neurons.multistep_if")
        theta = float(module.spike_threshold)
        return nir.IF(r=np.ones(in_shape, np.float32), v_threshold=np.full(in_shape, theta, np.float32),
                      metadata={META: {"min_v_mem": float(module.min_v_mem), "multi_spike": module.spike_fn is MultiSpike,
                                       "reset": "subtract"}})
    raise SpeckMttError(f"{name}: {type(module).__name__} has no NIR node in speck-mtt's export; "
                        "export networks of Conv2d/Linear, IF neurons, AvgPool2d/SumPool2d and Flatten")


def nir_bytes(graph: nir.NIRGraph) -> bytes:
    """The graph as nir.write writes it (HDF5), in memory, for an atomic write."""
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    return buffer.getvalue()


def _array(weight: torch.Tensor) -> np.ndarray:
    return weight.detach().cpu().numpy().astype(np.float32)


def _pair(value: Any) -> tuple[int, int]:
    values = np.asarray(value).reshape(-1).tolist()
    return (int(values[0]), int(values[0])) if len(values) == 1 else (int(values[0]), int(values[1]))


# ---------------------------------------------------------------- import


def is_nir_file(path: Path) -> bool:
    """A .nir name, or an HDF5 file (NIR's container; a torch checkpoint is a zip)."""
    path = Path(path)
    if path.suffix.lower() == ".nir":
        return True
    try:
        with path.open("rb") as fh:
            return fh.read(8) == HDF5_SIGNATURE
    except OSError:
        return False


def read_graph(path: Path) -> nir.NIRGraph:
    """nir.read with one-line errors for a missing, foreign or damaged file."""
    path = Path(path)
    if not path.is_file():
        raise SpeckMttError(f"{path}: no such NIR file; pass a .nir written by `speck-mtt export` or another NIR tool")
    with path.open("rb") as fh:
        if fh.read(8) != HDF5_SIGNATURE:
            raise SpeckMttError(f"{path}: not a NIR file (NIR files are HDF5, written by nir.write)")
    try:
        graph = nir.read(path)
    except Exception as exc:  # h5py and nir raise many types for damaged or foreign files
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise SpeckMttError(f"{path}: cannot be read as a NIR graph ({type(exc).__name__}: {reason})") from exc
    if not isinstance(graph, nir.NIRGraph):
        raise SpeckMttError(f"{path}: holds a single {type(graph).__name__} node, not a NIR graph")
    return graph


@dataclass
class Imported:
    """A NIR graph turned into nir_net's layer list, the weights/thresholds, and what was assumed."""

    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...] | None = None  # None: unknown (a node was refused)
    shapes: dict[str, tuple[int, ...] | None] = field(default_factory=dict)  # node name -> its input shape
    layers: list[dict[str, Any]] = field(default_factory=list)
    weights: list[torch.Tensor | None] = field(default_factory=list)  # per layer
    problems: list[FitProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    readout: bool = False  # ends in a non-leaking integrator node (membrane voting)

    def add(self, spec: dict[str, Any], weight: torch.Tensor | None = None) -> None:
        self.layers.append(spec)
        self.weights.append(weight)


def checkpoint_from_nir(path: Path) -> dict[str, Any]:
    """A speck-mtt checkpoint (architecture "nir") of the NIR graph in path; FitError lists every
    reason the graph cannot run on Speck, one line each."""
    path = Path(path)
    graph = read_graph(path)
    meta = _graph_meta(graph)
    result = import_graph(graph, f"{path} cannot be deployed")
    kinds = [layer["kind"] for layer in result.layers if layer["kind"] in ("conv", "linear", "if")]
    head = "membrane" if result.readout or (kinds and kinds[-1] != "if") else "if"
    if meta.get("head") not in (None, head):
        result.problems.append(FitProblem("graph metadata", "the head", f"what the structure says ({head})",
                                          str(meta["head"]), "re-export the network"))
    shape = result.output_shape
    if shape is not None and len(shape) != 1:
        result.problems.append(FitProblem("node before the Output", "the output shape", "a vector of class scores",
                                          "x".join(map(str, shape)), "end the network with Flatten -> Linear"))
    raise_if_problems(result.problems, f"{path} cannot be deployed")
    kwargs = {"layers": result.layers, "input_shape": list(result.input_shape), "n_classes": int(shape[0]),
              "head": head}
    model = build_model("nir", **kwargs)
    _load_weights(model, result.weights)
    extra = {k: meta[k] for k in ("dataset", "frames") if k in meta}
    if "frames" in extra:
        extra["t_max"] = int(extra.pop("frames"))
    return make_checkpoint(model, kwargs, source=str(path), source_format="nir", source_arch=meta.get("arch"),
                           import_notes=result.notes, **extra)


def import_graph(graph: nir.NIRGraph, where: str) -> Imported:
    """Walk the chain from Input to Output, converting node by node; raises FitError only when the
    graph is no chain or has no (channels, height, width) input, else collects problems."""
    chain, problems = _chain(graph)
    raise_if_problems(problems, where)
    input_shape, problems = _input_shape(graph.nodes[chain[0]], chain[0])
    raise_if_problems(problems, where)
    result, shape = Imported(input_shape=input_shape), input_shape
    for name in chain[1:-1]:
        result.shapes[name] = shape
        shape = _import_node(name, graph.nodes[name], shape, result, name == chain[-2])
    result.output_shape = shape
    return result


def write_nir(graph: nir.NIRGraph, path: Path) -> None:
    """nir.write, atomically, after filling in the input shapes nir 1.0.4 cannot store unset
    (Conv2d.input_shape and Flatten.input_type, which snnTorch 0.9 and sinabs.to_nir leave
    unset): use it to save a graph from another tool for `speck-mtt deploy`."""
    shapes = import_graph(graph, f"{path}: cannot complete the graph's shapes").shapes
    for name, shape in shapes.items():
        node = graph.nodes[name]
        if shape is None:
            continue
        if isinstance(node, nir.Conv2d) and node.input_shape is None:
            node.input_shape = tuple(shape[1:])
        elif isinstance(node, nir.Flatten) and node.input_type.get("input") is None:
            node.input_type = {"input": np.array(shape)}
    atomic_write(path, lambda fh: fh.write(nir_bytes(graph)))


def _graph_meta(graph: nir.NIRGraph) -> dict[str, Any]:
    """Our graph metadata as plain Python values ({} for a graph written by another tool)."""
    meta = (graph.metadata or {}).get(META)
    return {k: _plain(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    return value.item() if isinstance(value, np.generic) else value


def _chain(graph: nir.NIRGraph) -> tuple[list[str], list[FitProblem]]:
    """Node names from the Input to the Output, or the problems that make the graph no chain."""
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Output)]
    nexts: dict[str, list[str]] = {k: [] for k in graph.nodes}
    prevs: dict[str, list[str]] = {k: [] for k in graph.nodes}
    problems = []
    for a, b in graph.edges:
        if a not in graph.nodes or b not in graph.nodes:
            problems.append(FitProblem("graph", "an edge", "edges between existing nodes", f"{a} -> {b}",
                                       "repair the file"))
            continue
        nexts[a].append(b)
        prevs[b].append(a)
    if len(inputs) != 1 or len(outputs) != 1:
        problems.append(FitProblem("graph", "the number of Input / Output nodes", "one each",
                                   f"{len(inputs)} / {len(outputs)}", "export a single-input, single-output network"))
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            problems.append(FitProblem(f"node '{name}' (NIRGraph)", "a nested graph", "none: Speck layers are "
                                       "feed-forward", "a sub-graph (a recurrent layer?)", "use feed-forward layers"))
        elif len(nexts[name]) > 1 or len(prevs[name]) > 1:
            problems.append(FitProblem(f"node '{name}' ({type(node).__name__})", "the connections",
                                       "one chain: one input and one output per node",
                                       f"{len(prevs[name])} in, {len(nexts[name])} out",
                                       "speck-mtt deploys chains (no branches, skips or recurrence)"))
    if problems:
        return [], problems
    chain, seen = [inputs[0]], {inputs[0]}
    while nexts[chain[-1]]:
        nxt = nexts[chain[-1]][0]
        if nxt in seen:
            break
        chain.append(nxt)
        seen.add(nxt)
    if chain[-1] != outputs[0]:
        return [], [FitProblem("graph", "the path from input to output", "one chain Input -> ... -> Output",
                               f"stops at '{chain[-1]}'", "speck-mtt deploys chains (no recurrence)")]
    off = sorted(set(graph.nodes) - seen)
    if off:
        return [], [FitProblem("graph", "nodes off the input-output chain", "none", ", ".join(off),
                               "remove them or deploy a chain")]
    return chain, []


def _input_shape(node: nir.Input, name: str) -> tuple[tuple[int, ...], list[FitProblem]]:
    declared = (node.input_type or {}).get("input")
    shape = () if declared is None else tuple(int(v) for v in np.asarray(declared).reshape(-1))
    if len(shape) == 3 and min(shape) > 0:
        return shape, []
    hint = ("drop the batch dimension when exporting (nirtorch / snnTorch: ignore_dims=[0])"
            if len(shape) == 4 and shape[0] == 1 else "export with event frames (channels, height, width) as input")
    return shape, [FitProblem(f"node '{name}' (Input)", "the input shape", "(channels, height, width)",
                              "x".join(map(str, shape)) or "unknown", hint)]


def _import_node(name: str, node: nir.NIRNode, shape: tuple[int, ...] | None, out: Imported,
                 last: bool) -> tuple[int, ...] | None:
    """Append the node's layer to out (or its problems) and return the shape after it (None: unknown)."""
    label = f"node '{name}' ({type(node).__name__})"
    if isinstance(node, nir.Conv2d):
        return _import_conv(label, node, shape, out)
    if isinstance(node, (nir.Linear, nir.Affine)):
        return _import_linear(label, node, shape, out)
    if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        return _import_pool(label, node, shape, out)
    if isinstance(node, nir.Flatten):
        return _import_flatten(label, node, shape, out)
    if isinstance(node, (nir.IF, nir.LIF)):
        _import_neuron(label, node, shape, out)
        return shape
    if isinstance(node, _READOUT_NODES):
        _import_readout(label, node, last, out)
        return shape
    what = {nir.CubaLIF: "synaptic-current neuron", nir.Delay: "delay", nir.Conv1d: "1-d convolution",
            nir.Scale: "scaling", nir.Threshold: "threshold without state"}.get(type(node), "node type")
    out.problems.append(FitProblem(label, f"the {what}", "Conv2d, Linear, Affine without bias, AvgPool2d, SumPool2d, "
                                   "Flatten, IF, LIF without leak, a last LI/I readout", type(node).__name__,
                                   "replace it by a supported layer"))
    return None


def _import_conv(label: str, node: nir.Conv2d, shape: tuple[int, ...] | None, out: Imported) -> tuple[int, ...] | None:
    weight = np.asarray(node.weight, np.float32)
    if weight.ndim != 4:
        out.problems.append(FitProblem(label, "the weight", "(out, in, kh, kw)", str(weight.shape), "repair the file"))
        return None
    _no_bias(label, node.bias, out)
    kernel = weight.shape[2:]
    stride, dilation, groups = _pair(node.stride), _pair(node.dilation), int(node.groups)
    padding = _padding(label, node.padding, kernel, stride, dilation, out)
    if shape is not None and (len(shape) != 3 or shape[0] != weight.shape[1] * groups):
        out.problems.append(FitProblem(label, "the input", f"{weight.shape[1] * groups} channels (its weight)",
                                       "x".join(map(str, shape)), "repair the graph"))
        shape = None
    out.add({"kind": "conv", "in": int(weight.shape[1] * groups), "out": int(weight.shape[0]),
             "kernel": [int(k) for k in kernel], "stride": list(stride), "padding": list(padding),
             "dilation": list(dilation), "groups": groups}, weight=torch.from_numpy(weight))
    if shape is None:
        return None
    side = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, p, d, k, s in zip(shape[1:], padding, dilation, kernel, stride)]
    return (int(weight.shape[0]), *side)


def _import_linear(label: str, node: nir.Linear | nir.Affine, shape: tuple[int, ...] | None,
                   out: Imported) -> tuple[int, ...] | None:
    weight = np.asarray(node.weight, np.float32)
    if isinstance(node, nir.Affine):
        _no_bias(label, node.bias, out)
    if weight.ndim != 2:
        out.problems.append(FitProblem(label, "the weight", "(out, in)", str(weight.shape), "repair the file"))
        return None
    if shape is not None and shape != (weight.shape[1],):
        out.problems.append(FitProblem(label, "the input", f"a vector of {weight.shape[1]} (its weight)",
                                       "x".join(map(str, shape)), "put a Flatten before a Linear on a map"))
    out.add({"kind": "linear", "in": int(weight.shape[1]), "out": int(weight.shape[0])}, weight=torch.from_numpy(weight))
    return (int(weight.shape[0]),)


def _import_pool(label: str, node: nir.AvgPool2d | nir.SumPool2d, shape: tuple[int, ...] | None,
                 out: Imported) -> tuple[int, ...] | None:
    kernel, stride, padding = _pair(node.kernel_size), _pair(node.stride), _pair(node.padding)
    if padding != (0, 0):
        out.problems.append(FitProblem(label, "the pooling padding", "none", str(padding),
                                       "pool without padding (Speck sum-pools whole blocks)"))
    kind = "avgpool" if isinstance(node, nir.AvgPool2d) else "sumpool"
    out.add({"kind": kind, "kernel": list(kernel), "stride": list(stride)})
    if shape is None or len(shape) != 3:
        return None
    return (shape[0], *[(n - k) // s + 1 for n, k, s in zip(shape[1:], kernel, stride)])


def _import_flatten(label: str, node: nir.Flatten, shape: tuple[int, ...] | None,
                    out: Imported) -> tuple[int, ...] | None:
    ndim = len(shape) if shape is not None else 3
    start, end = int(node.start_dim), int(node.end_dim)
    if start % ndim != 0 or end % ndim != ndim - 1:
        out.problems.append(FitProblem(label, "the flattened dimensions", "all of (channels, height, width)",
                                       f"{start}..{end}", "flatten the whole map before the Linear"))
    out.add({"kind": "flatten"})
    return (int(np.prod(shape)),) if shape is not None else None


def _import_neuron(label: str, node: nir.IF | nir.LIF, shape: tuple[int, ...] | None, out: Imported) -> None:
    """IF, or LIF with tau = inf, as our IF: one threshold per layer (v_threshold / r)."""
    gain = _gain(label, node, out)
    if gain is None:
        return
    theta = np.asarray(node.v_threshold, np.float64) / gain
    if theta.size not in (1, int(np.prod(shape or theta.shape))) or np.ptp(theta) != 0 or not theta.flat[0] > 0:
        out.problems.append(FitProblem(label, "the threshold", "one positive value per layer (v_threshold / r)",
                                       f"{theta.min():g}..{theta.max():g} over {theta.size} neurons",
                                       "use one threshold per layer"))
        return
    theta_value = float(theta.flat[0])
    ours = node.metadata.get(META) if isinstance(getattr(node, "metadata", None), dict) else None
    if isinstance(ours, dict) and "min_v_mem" in ours:
        floor, multi = float(ours["min_v_mem"]) / gain / theta_value, bool(ours.get("multi_spike"))
    else:
        floor, multi = DEFAULT_FLOOR, False
        out.notes.append(f"{label}: no speck_mtt metadata: floor {floor:g} x threshold, one spike per step (NIR's IF)")
    if not FLOOR_RANGE[0] <= floor <= FLOOR_RANGE[1]:
        out.problems.append(FitProblem(label, "the floor (speck_mtt min_v_mem / threshold)",
                                       f"[{FLOOR_RANGE[0]:g}, {FLOOR_RANGE[1]:g}] thresholds", f"{floor:g}",
                                       "re-export with a floor in that range"))
        return
    out.add({"kind": "if", "threshold": theta_value, "floor": floor, "spike": "multi" if multi else "single"})


def _gain(label: str, node: nir.IF | nir.LIF, out: Imported) -> float | None:
    """Input gain of the neuron (NIR: r for IF; 1 for an LIF with tau = r = inf), None if refused."""
    r = np.asarray(node.r, np.float64)
    if isinstance(node, nir.LIF):
        return 1.0 if _no_leak(label, node.tau, r, out) else None
    if not np.all(np.isfinite(r)) or not np.all(r > 0):
        out.problems.append(FitProblem(label, "the resistance r", "positive and finite", f"{r.min():g}..{r.max():g}",
                                       "repair the file"))
        return None
    if np.ptp(r) != 0:
        out.problems.append(FitProblem(label, "the resistance r", "one value per layer", f"{r.min():g}..{r.max():g}",
                                       "fold r into the weights before exporting"))
        return None
    return float(r.reshape(-1)[0])


def _no_leak(label: str, tau: Any, r: np.ndarray, out: Imported) -> bool:
    """A leaky node is refused; tau = inf needs r = inf too (gain r/tau * dt = 1, the convention
    of writers that set r = tau/dt, e.g. snnTorch's Leaky(beta=1)), else it integrates nothing."""
    tau = np.asarray(tau, np.float64)
    if np.any(np.isfinite(tau)):
        out.problems.append(FitProblem(label, "the leak", "none: Speck neurons do not leak (tau = inf)",
                                       f"tau {np.min(tau[np.isfinite(tau)]):g}",
                                       "train without leak (an IF neuron, snnTorch Leaky(beta=1))"))
        return False
    if not np.all(np.isinf(r)):
        out.problems.append(FitProblem(label, "the input gain r/tau", "1 (r = tau = inf)", "0 (tau = inf, r finite)",
                                       "export the non-leaking neuron as an IF node"))
        return False
    return True


def _import_readout(label: str, node: nir.LI | nir.I, last: bool, out: Imported) -> None:
    """A non-leaking integrator as the last node: the membrane-voting readout (argmax of its input)."""
    r = np.asarray(node.r, np.float64)
    ok = _no_leak(label, node.tau, r, out) if isinstance(node, nir.LI) else bool(np.all(r > 0) and np.ptp(r) == 0)
    if isinstance(node, nir.I) and not ok:
        out.problems.append(FitProblem(label, "the resistance r", "one positive value", f"{r.min():g}..{r.max():g}",
                                       "use one positive r"))
    if not last:
        out.problems.append(FitProblem(label, "an integrator before other layers", "only as the last node "
                                       "(membrane readout)", "not last", "end the network with it or use IF"))
    out.readout = ok and last


def _no_bias(label: str, bias: Any, out: Imported) -> None:
    values = np.asarray(bias, np.float64)
    if np.any(values != 0):
        out.problems.append(FitProblem(label, "the bias", "none: a bias becomes a slow-clock leak",
                                       f"{int(np.count_nonzero(values))} nonzero values (max |b| {np.abs(values).max():.3g})",
                                       "train without biases (bias=False) or absorb them before exporting"))


def _padding(label: str, padding: Any, kernel: tuple[int, ...], stride: tuple[int, int], dilation: tuple[int, int],
             out: Imported) -> tuple[int, int]:
    if not isinstance(padding, (str, bytes)):
        return _pair(padding)
    text = padding.decode() if isinstance(padding, bytes) else padding
    if text == "valid":
        return (0, 0)
    if text == "same" and stride == (1, 1) and all((d * (k - 1)) % 2 == 0 for d, k in zip(dilation, kernel)):
        return (dilation[0] * (kernel[0] - 1) // 2, dilation[1] * (kernel[1] - 1) // 2)
    out.problems.append(FitProblem(label, "the padding", "integers, 'valid' or 'same' at stride 1 with odd kernels",
                                   repr(text), "give the padding as integers"))
    return (0, 0)


def _load_weights(model: SpikingNet, weights: list[torch.Tensor | None]) -> None:
    """Copy the weights into the freshly built model, layer by layer (thresholds and floors are
    in the layer list, which the checkpoint keeps as arch_kwargs)."""
    layers = [m for block in model.blocks for m in block]
    with torch.no_grad():
        for module, weight in zip(layers, weights, strict=True):
            if weight is not None:
                module.weight.copy_(weight)
