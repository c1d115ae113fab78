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

Energy proxy, from a torch forward of the SpikingNet (analysis.probe.SpikeRecorder, no chip):
spikes of every IF layer (multi-spike counts) and SynOps of every weight layer.
Counts are exact per sample and time step for a uniform temporal configuration; between MTT
stages of different T they are counted where they occur (before/after the TTM).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..models import SpikingNet
from ..timegroups import resample_time
from .probe import SpikeRecorder, batches, check_input


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
        for frames, label in batches(dataset, batch_size, limit):
            check_input(model, frames)
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
            for frames, label in batches(dataset, batch_size, limit):
                check_input(model, frames)
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
