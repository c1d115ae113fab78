"""`speck-mtt deploy`: checkpoint -> DynapCNN layout artifact, layout.json and a readable report.

The artifact (DEPLOY_DIR/artifact.pt) is what the event-driven simulator and the devkit path
both consume; layout.json and report.md tell the user, before any hardware, where each layer
goes, how much of its core it uses and how much work an average sample causes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sinabs
import torch
from sinabs.hooks import conv_connection_map

from ..checkpoint import (DEFAULT_DATASET, load_checkpoint, meta_value, model_from_checkpoint, recipe_name_of,
                          save_checkpoint, t_max_of)
from ..errors import SpeckMttError
from ..files import save_json, save_text, save_torch
from ..models.neurons import floor_of
from .layout import Layout, layout_model

DEFAULT_FRAMES = 10


def deploy(checkpoint: Path, target: str, out: Path, *, dataset: str | None = None, data_dir: Path | None = None,
           samples: int = 8, frames: int | None = None, floor: float | None = None) -> dict[str, Any]:
    """Write artifact.pt, layout.json, report.md and model.pt to out; return the layout.json dict.

    floor: the chip's lower threshold in thresholds (default: the floor the checkpoint was trained with).
    Raises FitError (one line per problem) when the checkpoint holds BN/biases, or when target is
    speck2e and the network does not fit.
    """
    checkpoint = Path(checkpoint)
    ckpt = load_source(checkpoint)
    model = model_from_checkpoint(ckpt, checkpoint)
    model.eval()
    recipe = recipe_name_of(ckpt)
    trained_floor = floor_of(model)
    layout = layout_model(model, target, recipe=recipe, checkpoint=str(checkpoint), floor=floor)
    name = dataset or meta_value(ckpt, "dataset") or DEFAULT_DATASET.get(model.name)
    n_frames = frames or t_max_of(ckpt) or _dataset_frames(name) or DEFAULT_FRAMES
    synops = _synops_from_data(layout, name, data_dir, samples, int(n_frames))
    summary = layout_summary(layout, checkpoint=str(checkpoint), recipe=recipe, synops=synops)
    summary["trained_floor"] = trained_floor
    if ckpt.get("source_format") == "nir":
        summary["import_notes"] = list(ckpt.get("import_notes", []))

    out = Path(out)
    # artifact.pt last (and an older one gone first): it is what marks a deployment complete for
    # measure and recipes/paper.sh, so a deploy stopped half-way never pairs it with another model.pt
    (out / "artifact.pt").unlink(missing_ok=True)
    save_checkpoint(ckpt, out / "model.pt")
    save_json(summary, out / "layout.json")
    save_text(render_report(summary), out / "report.md")
    save_torch(layout.artifact, out / "artifact.pt")
    return summary


def load_source(path: Path) -> dict[str, Any]:
    """A checkpoint, or a NIR graph imported as one (nir_io: refused with reasons if Speck cannot run it)."""
    from .nir_io import checkpoint_from_nir, is_nir_file

    return checkpoint_from_nir(path) if is_nir_file(path) else load_checkpoint(path)


def _dataset_frames(name: str | None) -> int | None:
    """The recipe T of a dataset (data registry), if the data package knows it."""
    try:
        from ..data import DATASETS
    except ImportError:
        return None
    info = DATASETS.get(name) if name else None
    return info.default_frames if info else None


def estimate_synops(layout: Layout, batches: Iterable[torch.Tensor]) -> dict[str, Any]:
    """Per layer: average input events, SynOps and output spikes per sample.

    Forwards (B, T, C, H, W) event-count frames through the float layout (sinabs' DynapcnnNetwork
    with discretize=False: sum pooling and folded 1/k^2, so a layer's input is the number of
    events its core receives). SynOps = sum over input neurons of events x fan-out, the fan-out
    from sinabs.hooks.conv_connection_map.
    """
    network = layout.float_network
    layers = [network.dynapcnn_layers[k] for k in layout.keys]
    inputs = [torch.zeros(()) for _ in layers]
    spikes = [torch.zeros(()) for _ in layers]
    handles = []
    for i, layer in enumerate(layers):
        def conv_hook(module, args, output, i=i):
            inputs[i] = inputs[i] + args[0].detach().sum(0)

        def spike_hook(module, args, output, i=i):
            spikes[i] = spikes[i] + output.detach().sum()

        handles.append(layer.conv_layer.register_forward_hook(conv_hook))
        handles.append(layer.spk_layer.register_forward_hook(spike_hook))
    n_samples, n_events = 0, 0.0
    try:
        with torch.no_grad():
            for frames in batches:
                batch = frames.shape[0]
                sinabs.reset_states(network.dynapcnn_module)
                for layer in layers:
                    layer.spk_layer.batch_size = batch
                network(frames.flatten(0, 1).float())
                n_samples += batch
                n_events += float(frames.sum())
    finally:
        for handle in handles:
            handle.remove()
        sinabs.reset_states(network.dynapcnn_module)
    if n_samples == 0:
        return {"samples": 0, "layers": []}
    per_layer = []
    for layer, events, out_spikes in zip(layers, inputs, spikes):
        fan_out = conv_connection_map(layer.conv_layer, tuple(layer.in_shape), layer.get_neuron_shape(), "cpu")
        per_layer.append({"input_events": float(events.sum()) / n_samples,
                          "synops": float((events * fan_out[0]).sum()) / n_samples,
                          "output_spikes": float(out_spikes) / n_samples})
    return {"samples": n_samples, "input_events": n_events / n_samples, "layers": per_layer}


def _synops_from_data(layout: Layout, name: str | None, data_dir: Path | None, samples: int,
                      n_frames: int) -> dict[str, Any]:
    """SynOps on a few test samples of the checkpoint's dataset; a note instead when unavailable."""
    base = {"dataset": name, "frames": n_frames, "samples": 0, "layers": [], "note": None}
    if samples <= 0:
        return {**base, "note": "SynOps not estimated (--samples 0)"}
    if name is None:
        return {**base, "note": "SynOps not estimated: no dataset known for this checkpoint (pass --dataset)"}
    try:
        from ..data import frame_dataset, resolve_dataset

        resolved = resolve_dataset(name, data_dir)
        data = frame_dataset(resolved, "test", n_frames, data_dir=data_dir, limit=samples)
        first = data[0][0]
    except (ImportError, SpeckMttError, OSError, IndexError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return {**base, "note": f"SynOps not estimated: data for {name!r} unavailable ({reason})"}
    expected = tuple(layout.artifact["input_shape"])
    if tuple(first.shape[1:]) != expected:
        return {**base, "dataset": resolved,
                "note": f"SynOps not estimated: {resolved} frames are {tuple(first.shape[1:])}, the network takes {expected}"}
    n = min(samples, len(data))
    batches = (torch.stack([data[j][0] for j in range(i, min(i + 4, n))]) for i in range(0, n, 4))
    return {**base, "dataset": resolved, **estimate_synops(layout, batches)}


def layout_summary(layout: Layout, *, checkpoint: str | None = None, recipe: Any = None,
                   synops: dict[str, Any] | None = None) -> dict[str, Any]:
    """The readable layout (layout.json): per layer shapes, memory vs core, fan-out, SynOps."""
    art = layout.artifact
    synops = synops or {"samples": 0, "layers": [], "note": "SynOps not estimated"}
    estimated = synops.get("layers") or [{}] * len(layout.geometry)
    layers = []
    for g, layer, est in zip(layout.geometry, art["layers"], estimated):
        core = layer["core"]
        layers.append({
            "index": g.index, "name": g.label.split(": ", 1)[-1], "sinabs_index": layer["sinabs_index"],
            "kind": "linear" if g.from_linear else "conv",
            "input_shape": list(g.in_shape), "output_shape": list(g.out_shape),
            "pooled_output_shape": [g.out_shape[0], g.out_shape[1] // layer["pool"][0], g.out_shape[2] // layer["pool"][1]],
            "kernel": g.kernel, "stride": layer["stride"], "padding": layer["padding"], "pool": layer["pool"],
            "weights": int(layer["weight"].numel()),
            "memory": g.memory, "core": core, "core_capacity": layout.capacity[core] if core is not None else None,
            "fits_cores": layout.candidates[g.index],
            "destinations": layer["destinations"], "fan_out": len(layer["destinations"]),
            "scale": layer["scale"], "threshold_high": layer["threshold_high"], "threshold_low": layer["threshold_low"],
            "readout": layer["readout"],
            "input_events_per_sample": est.get("input_events"), "synops_per_sample": est.get("synops"),
            "output_spikes_per_sample": est.get("output_spikes"),
        })
    total = sum(layer["synops_per_sample"] for layer in layers) if synops.get("samples") else None
    return {
        "format": "speck-mtt-layout-report", "arch": art["arch"], "head": art["head"], "n_classes": art["n_classes"],
        "target": art["target"], "chip": art["chip"], "checkpoint": checkpoint, "recipe": recipe,
        "fits_chip": art["fits_chip"], "fit_problems": art["fit_problems"], "floor": art["floor"],
        "input": {"shape": art["input_shape"], "pool": art["input_pool"], "via": art["input_layer"]},
        "cores": [{"core": i, **c} for i, c in enumerate(layout.capacity)],
        "layers": layers,
        "synops": {"per_sample": total, "samples": synops.get("samples", 0), "dataset": synops.get("dataset"),
                   "frames": synops.get("frames"), "input_events_per_sample": synops.get("input_events"),
                   "note": synops.get("note")},
    }


def format_number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render_report(summary: dict[str, Any]) -> str:
    """report.md: the fit verdict, the layer table and how to read it."""
    chip = summary["chip"]
    lines = [f"# {summary['arch']} -> {summary['target']}", ""]
    if summary.get("checkpoint"):
        lines += [f"Checkpoint: `{summary['checkpoint']}`" + (f" (recipe {summary['recipe']})" if summary.get("recipe") else ""), ""]
    if summary["fits_chip"]:
        lines += [f"**Fits {chip}**: {len(summary['layers'])} of {len(summary['cores'])} cores used.", ""]
    else:
        lines += [f"**Does not fit {chip}** ({len(summary['fit_problems'])} problems); "
                  "the artifact is for the simulator only:", ""]
        lines += [f"- {p}" for p in summary["fit_problems"]] + [""]
    inp = summary["input"]
    via = ("the DVS layer, which sum-pools input events by "
           f"{inp['pool']}x{inp['pool']}") if inp["via"] == "dvs" else "the first core directly"
    lines += [f"Input: {'x'.join(map(str, inp['shape']))} events, fed through {via}. "
              f"Head: {summary['head']} voting, {summary['n_classes']} classes.", ""]
    trained = summary.get("trained_floor")
    lines += [f"Lower threshold (floor): {summary['floor']:g} x threshold_high"
              + (f" (the model was trained with {trained:g})" if trained is not None else "")
              + "; threshold_low below is it in chip units, clipped to the 16-bit state.", ""]
    lines += ["| layer | name | input -> output (pooled) | k / s / p | core | kernel mem used / core | "
              "neuron mem used / core | fan-out | SynOps/sample | spikes/sample | scale | threshold high / low |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for layer in summary["layers"]:
        cap = layer["core_capacity"]
        mem = layer["memory"]
        kmem = f"{mem['kernel']:,} / {cap['kernel']:,}" if cap else f"{mem['kernel']:,} / -"
        nmem = f"{mem['neuron']:,} / {cap['neuron']:,}" if cap else f"{mem['neuron']:,} / -"
        shapes = (f"{'x'.join(map(str, layer['input_shape']))} -> {'x'.join(map(str, layer['output_shape']))}"
                  + (f" ({'x'.join(map(str, layer['pooled_output_shape']))})" if layer["pool"] != [1, 1] else ""))
        core = str(layer["core"]) if layer["core"] is not None else f"- (fits {layer['fits_cores'] or 'none'})"
        lines.append(
            f"| {layer['index']} | {layer['name']} | {shapes} | {layer['kernel']} / {layer['stride'][0]} / "
            f"{layer['padding'][0]} | {core} | {kmem} | {nmem} | {layer['fan_out']} | "
            f"{format_number(layer['synops_per_sample'])} | {format_number(layer['output_spikes_per_sample'], 1)} | "
            f"{layer['scale']:.4g} | {layer['threshold_high']:.0f} / {layer['threshold_low']:.0f} |")
    syn = summary["synops"]
    lines += [""]
    if syn["per_sample"] is not None:
        lines += [f"SynOps per average sample: {syn['per_sample']:,.0f} (torch forward of the float layout on "
                  f"{syn['samples']} test samples of {syn['dataset']} at T={syn['frames']}, "
                  f"{format_number(syn['input_events_per_sample'])} input events per sample)."]
    else:
        lines += [syn.get("note") or "SynOps not estimated."]
    lines += ["", "How to read this:",
              "- Memory is in sinabs' units, padded to powers of two: kernel = C_in * 2^ceil(log2 k*k) * "
              "2^ceil(log2 C_out), neuron = C_out * 2^ceil(log2 H) * 2^ceil(log2 W); capacities are sinabs' "
              "Speck2e constraint table.",
              "- A Linear is a conv whose kernel covers its whole input map; an AvgPool(k) is a SumPool(k) with "
              "1/k^2 folded into the next layer's weights before discretization.",
              "- scale: weights and thresholds are multiplied by it and rounded (weights int8, thresholds int16).",
              "- A membrane readout layer has thresholds at the int16 limits so it does not fire; its class "
              "score is the accumulated input v + n_spikes * threshold_high.",
              "- SynOps: input events x the number of neurons each event reaches (kernel x output channels, "
              "less at borders)."]
    return "\n".join(lines) + "\n"
