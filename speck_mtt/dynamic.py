"""Dynamic inference time: confidence-based early exit over time steps, and the energy proxy.

The setting (the paper's motivation for one network serving every T): the network runs ONCE
on frames at T_max and its output is read step by step; at step t the prediction is the argmax
of the cumulative mean output over steps 1..t, and the sample exits at the first t whose
softmax confidence (max probability of that cumulative mean) reaches a threshold. The IF
neurons are causal, so step t has seen only the first t of T_max input frames (the first
t/T_max of the recording): early exit saves both time and spikes.

This is NOT the same as running the network at T = t frames (each frame then covers
1/t of the whole recording): `energy_at_t` measures that fixed-T setting separately, for
comparison.

Energy proxy, from a torch forward of the SpikingNet (hooks, no chip):
- spikes: output spikes of every sinabs IAFSqueeze layer (multi-spike counts);
- SynOps: events arriving at every Conv2d/Linear times their fan-out (the number of target
  neurons each input neuron reaches, sinabs.hooks.conv_connection_map; out_features for a
  Linear). A preceding AvgPool2d(k) is counted as the chip's SumPool(k) (its input times
  k*k), so the first layer's SynOps come from the input events, as in the simulator.
Counts are exact per sample and time step for a uniform temporal configuration; between MTT
stages of different T they are counted where they occur (before/after the TTM).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import sinabs.layers as sl
import torch
import typer
from sinabs.hooks import conv_connection_map
from torch import nn

from .errors import SpeckMttError
from .models import SpikingNet
from .timegroups import resample_time


# ---------------------------------------------------------------------------------------------
# Pure early-exit logic on per-step outputs (N, T, C)
# ---------------------------------------------------------------------------------------------

def cumulative_mean(outputs: np.ndarray) -> np.ndarray:
    """(N, T, C) per-step outputs -> (N, T, C) mean over steps 1..t (what the net reads at step t)."""
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim != 3:
        raise ValueError(f"outputs must be (N, T, C), got shape {out.shape}")
    return np.cumsum(out, axis=1) / np.arange(1, out.shape[1] + 1)[None, :, None]


def confidence(outputs: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """(N, T) max softmax probability of the cumulative mean output divided by `temperature`."""
    z = cumulative_mean(outputs) / temperature
    z = z - z.max(axis=2, keepdims=True)
    p = np.exp(z)
    return (p / p.sum(axis=2, keepdims=True)).max(axis=2)


def accuracy_per_step(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(T,) accuracy when every sample stops at step t (ties go to the lowest class index)."""
    pred = cumulative_mean(outputs).argmax(axis=2)
    return (pred == np.asarray(labels)[:, None]).mean(axis=0)


@dataclass(frozen=True)
class EarlyExit:
    exit_step: np.ndarray  # (N,) 1-based number of steps used (T_max when never confident)
    predictions: np.ndarray  # (N,) class read at the exit step
    confident: np.ndarray  # (N,) bool, False where the sample ran to T_max without passing


def early_exit(outputs: np.ndarray, threshold: float, temperature: float = 1.0) -> EarlyExit:
    """Exit each sample at the first step whose confidence is >= threshold, else at T_max."""
    conf = confidence(outputs, temperature)
    passed = conf >= threshold
    confident = passed.any(axis=1)
    first = np.where(confident, passed.argmax(axis=1), conf.shape[1] - 1)
    pred = cumulative_mean(outputs).argmax(axis=2)[np.arange(len(first)), first]
    return EarlyExit(first + 1, pred, confident)


def threshold_sweep(outputs: np.ndarray, labels: np.ndarray, thresholds: Sequence[float],
                    step_costs: dict[str, np.ndarray] | None = None,
                    temperature: float = 1.0) -> list[dict[str, float]]:
    """Accuracy vs mean T for each threshold.

    step_costs: name -> (N, T) cost of each step per sample (e.g. spikes, SynOps); each row gets
    the mean cost per sample up to its exit step, e.g. "synops_per_sample".
    """
    labels = np.asarray(labels)
    cum = {k: np.cumsum(np.asarray(v, dtype=np.float64), axis=1) for k, v in (step_costs or {}).items()}
    rows = []
    for th in thresholds:
        ex = early_exit(outputs, th, temperature)
        row = {"threshold": float(th), "accuracy": float((ex.predictions == labels).mean()),
               "mean_t": float(ex.exit_step.mean()), "exited_early": float(ex.confident.mean())}
        for k, c in cum.items():
            row[f"{k}_per_sample"] = float(c[np.arange(len(c)), ex.exit_step - 1].mean())
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# Spike and SynOps recording on a SpikingNet forward
# ---------------------------------------------------------------------------------------------

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


def _batches(dataset: torch.utils.data.Dataset, batch_size: int, limit: int | None):
    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        raise SpeckMttError("the dataset is empty; pass a split/limit with at least one sample")
    sub = torch.utils.data.Subset(dataset, range(n))
    return torch.utils.data.DataLoader(sub, batch_size=batch_size, shuffle=False)


def _check_input(model: SpikingNet, frames: torch.Tensor) -> None:
    if tuple(frames.shape[2:]) != tuple(model.input_shape):
        raise SpeckMttError(f"frames of shape {tuple(frames.shape[2:])} do not fit {model.name}, which takes "
                            f"{tuple(model.input_shape)}; use the dataset the model was trained on")


@dataclass
class StepwiseRun:
    """One forward at T_max per sample, read step by step (see the module docstring)."""

    outputs: np.ndarray  # (N, T, C) per-step network output
    labels: np.ndarray  # (N,)
    spikes: np.ndarray  # (N, T, L_if) spikes per IF layer and step
    synops: np.ndarray  # (N, T, L_w) SynOps per weight layer and step
    neuron_layers: list[str]
    weight_layers: list[str]

    @property
    def step_spikes(self) -> np.ndarray:
        return self.spikes.sum(2)

    @property
    def step_synops(self) -> np.ndarray:
        return self.synops.sum(2)


@torch.no_grad()
def run_stepwise(model: SpikingNet, dataset: torch.utils.data.Dataset, t_max: int | None = None,
                 batch_size: int = 32, limit: int | None = None, device: str = "cpu") -> StepwiseRun:
    """Run `model` once at uniform T = t_max (default: the dataset's frame count) on a dataset of
    ((T, C, H, W) frames, label) and keep the per-step outputs, spikes and SynOps."""
    model = model.to(device).eval()
    outs, labels, spikes, synops = [], [], [], []
    with SpikeRecorder(model) as rec:
        for frames, label in _batches(dataset, batch_size, limit):
            _check_input(model, frames)
            t = t_max or frames.shape[1]
            x = resample_time(frames.float().to(device), t, dim=1)
            y = model(x, [t] * model.n_stages())
            s, o = rec.take(len(frames))
            outs.append(y.cpu())
            labels.append(torch.as_tensor(label))
            spikes.append(torch.stack(s, -1).cpu())
            synops.append(torch.stack(o, -1).cpu())
    return StepwiseRun(torch.cat(outs).numpy(), torch.cat(labels).numpy(), torch.cat(spikes).numpy(),
                       torch.cat(synops).numpy(), rec.neuron_names, rec.weight_names)


@torch.no_grad()
def energy_at_t(model: SpikingNet, dataset: torch.utils.data.Dataset, ts: Sequence[int],
                batch_size: int = 32, limit: int | None = None, device: str = "cpu") -> list[dict[str, Any]]:
    """Fixed-T setting: for each T, run on frames resampled to T (uniform configuration) and
    report accuracy, spikes and SynOps per sample (totals and per layer)."""
    model = model.to(device).eval()
    rows = []
    for t in ts:
        n, correct = 0, 0
        spikes = synops = None
        with SpikeRecorder(model) as rec:
            for frames, label in _batches(dataset, batch_size, limit):
                _check_input(model, frames)
                x = resample_time(frames.float().to(device), int(t), dim=1)
                y = model(x, [int(t)] * model.n_stages())
                s, o = rec.take(len(frames))
                s_sum = torch.stack([v.sum(1) for v in s], -1).sum(0)
                o_sum = torch.stack([v.sum(1) for v in o], -1).sum(0)
                spikes = s_sum if spikes is None else spikes + s_sum
                synops = o_sum if synops is None else synops + o_sum
                correct += int((y.mean(1).argmax(1).cpu() == torch.as_tensor(label)).sum())
                n += len(frames)
        rows.append({"t": int(t), "accuracy": correct / n, "spikes_per_sample": float(spikes.sum()) / n,
                     "synops_per_sample": float(synops.sum()) / n,
                     "layer_spikes_per_sample": dict(zip(rec.neuron_names, (spikes / n).tolist())),
                     "layer_synops_per_sample": dict(zip(rec.weight_names, (synops / n).tolist()))})
    return rows


DEFAULT_THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)  # IF heads: low (small counts)


def dynamic_report(run: StepwiseRun, thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
                   temperature: float = 1.0) -> dict[str, Any]:
    """The dynamic-time summary of one stepwise run: per-step accuracy and cumulative energy
    (stopping every sample at t), and the early-exit sweep."""
    acc = accuracy_per_step(run.outputs, run.labels)
    cum_spk = np.cumsum(run.step_spikes, 1).mean(0)
    cum_syn = np.cumsum(run.step_synops, 1).mean(0)
    per_step = [{"t": t + 1, "accuracy": float(acc[t]), "spikes_per_sample": float(cum_spk[t]),
                 "synops_per_sample": float(cum_syn[t])} for t in range(len(acc))]
    sweep = threshold_sweep(run.outputs, run.labels, thresholds,
                            {"spikes": run.step_spikes, "synops": run.step_synops}, temperature)
    return {"setting": "one run at T_max read step by step (cumulative mean output)",
            "t_max": int(run.outputs.shape[1]), "n_samples": int(len(run.labels)), "temperature": temperature,
            "per_step": per_step, "early_exit": sweep}


def render_dynamic(report: dict[str, Any]) -> str:
    """Markdown for a dynamic_report (plus optional 'fixed_t' rows from energy_at_t)."""
    lines = [f"## Dynamic time steps ({report['n_samples']} samples, T_max {report['t_max']})", "",
             f"Setting: {report['setting']}.", "",
             "| stop at t | accuracy % | spikes/sample | SynOps/sample |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['t']} | {100 * r['accuracy']:.2f} | {r['spikes_per_sample']:,.0f} | "
              f"{r['synops_per_sample']:,.0f} |" for r in report["per_step"]]
    lines += ["", "Early exit (softmax confidence of the cumulative mean output >= threshold):", "",
              "| threshold | accuracy % | mean T | exited early % | spikes/sample | SynOps/sample |",
              "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['threshold']:g} | {100 * r['accuracy']:.2f} | {r['mean_t']:.2f} | {100 * r['exited_early']:.1f} | "
              f"{r['spikes_per_sample']:,.0f} | {r['synops_per_sample']:,.0f} |" for r in report["early_exit"]]
    if report.get("fixed_t"):
        lines += ["", "Fixed T (a separate run on frames resampled to T):", "",
                  "| T | accuracy % | spikes/sample | SynOps/sample |", "|---:|---:|---:|---:|"]
        lines += [f"| {r['t']} | {100 * r['accuracy']:.2f} | {r['spikes_per_sample']:,.0f} | "
                  f"{r['synops_per_sample']:,.0f} |" for r in report["fixed_t"]]
    return "\n".join(lines) + "\n"


def _parse_floats(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise SpeckMttError(f"--thresholds {text!r}: give comma-separated numbers, e.g. 0.8,0.9,0.99") from exc
    if not vals or any(not (0 < v <= 1) or math.isnan(v) for v in vals):
        raise SpeckMttError(f"--thresholds {text!r}: each threshold must be in (0, 1]")
    return vals


def checkpoint_and_test_frames(checkpoint: Path, dataset: str | None = None, data_dir: Path | None = None,
                               t_max: int | None = None, samples: int | None = None
                               ) -> tuple[SpikingNet, torch.utils.data.Dataset, int, str]:
    """The model of a `speck-mtt train` checkpoint and its test split as frames at T_max
    (dataset and T_max from the checkpoint's recipe unless given)."""
    from .checkpoint import dataset_of, load_checkpoint, model_from_checkpoint, t_max_of
    from .data import frame_dataset, resolve_dataset

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


def dynamic_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint written by `speck-mtt train`.")],
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset (default: the checkpoint's).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Dataset root (default $SPECK_MTT_DATA "
                                                                        "or ./data).")] = None,
    t_max: Annotated[Optional[int], typer.Option("--t-max", min=1, help="Frames of the one run read step by step "
                                                                        "(default: the checkpoint's T_max).")] = None,
    thresholds: Annotated[str, typer.Option("--thresholds", help="Comma-separated confidence thresholds.")]
    = ",".join(map(str, DEFAULT_THRESHOLDS)),
    temperature: Annotated[float, typer.Option("--temperature", min=1e-6, help="Softmax temperature of the "
                                                                               "confidence.")] = 1.0,
    samples: Annotated[Optional[int], typer.Option("--samples", min=1, help="Test samples (default: all).")] = None,
    fixed_t: Annotated[bool, typer.Option("--fixed-t/--no-fixed-t", help="Also run at every fixed T "
                                                                         "(energy proxy per T).")] = True,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write dynamic.json and dynamic.md here.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Early exit over time steps: accuracy vs mean T for a sweep of confidence thresholds, and
    spikes/SynOps per sample for each T."""
    from .files import dumps_json, save_json, save_text

    ths = _parse_floats(thresholds)
    model, data, t, name = checkpoint_and_test_frames(checkpoint, dataset, data_dir, t_max, samples)
    report = dynamic_report(run_stepwise(model, data, t), ths, temperature)
    report.update(checkpoint=str(checkpoint), dataset=name)
    if fixed_t:
        report["fixed_t"] = energy_at_t(model, data, range(1, t + 1))
    if out is not None:
        save_json(report, Path(out) / "dynamic.json")
        save_text(render_dynamic(report), Path(out) / "dynamic.md")
    typer.echo(dumps_json(report) if json_out else render_dynamic(report))
