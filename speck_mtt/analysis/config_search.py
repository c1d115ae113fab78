"""The temporal-configuration search on a SpikingNet: measure sampled configurations on a frame
dataset, fit the models of speck_mtt.mtt.search, pick and measure the best configuration.

The rates measured at uniform T_max (the paper's) ignore that coarser frames carry more events
per step and that a TTM upsampling replicates spikes; on nmnist-sim they under-predicted a
searched configuration's energy twofold. The driver therefore fits the rates to the energies of
the sampled configurations by default, reports the energy model's fit quality, and measures the
chosen configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..files import remove_stale_temps, save_json, save_text
from ..mtt.search import (EnergyKind, RatesFrom, energy, fit_rates, fit_sqrt_model, r_squared, sample_configs,
                          search_best)
from .probe import SpikeRecorder, batches, check_input


@torch.no_grad()
def evaluate_configs(model, dataset, configs: Sequence[Sequence[int]], batch_size: int = 32,
                     limit: int | None = None, device: str = "cpu") -> list[dict[str, Any]]:
    """Accuracy, spikes and SynOps per sample for each configuration, plus per-stage counts
    per sample and time step (the stage rates r_i)."""
    model = model.to(device).eval()
    stages = model.stages()
    stage_of_block = {b: i for i, st in enumerate(stages) for b in st}
    rows = []
    for config in configs:
        config = [int(t) for t in config]
        n, correct = 0, 0
        spk = np.zeros(len(stages))
        syn = np.zeros(len(stages))
        with SpikeRecorder(model) as rec:
            for frames, label in batches(dataset, batch_size, limit):
                check_input(model, frames)
                y = model(frames.float().to(device), config)
                s, o = rec.take(len(frames))
                for v, b in zip(s, rec.neuron_block):
                    spk[stage_of_block[b]] += float(v.sum())
                for v, b in zip(o, rec.weight_block):
                    syn[stage_of_block[b]] += float(v.sum())
                correct += int((y.mean(1).argmax(1).cpu() == torch.as_tensor(label)).sum())
                n += len(frames)
        t = np.asarray(config, dtype=np.float64)
        rows.append({"config": config, "accuracy": correct / n, "spikes_per_sample": float(spk.sum()) / n,
                     "synops_per_sample": float(syn.sum()) / n,
                     "stage_spike_rate": (spk / n / t).tolist(), "stage_synops_rate": (syn / n / t).tolist()})
    return rows


def search_configuration(model, dataset, t_min: int, t_max: int, n_configs: int = 18,
                         energy_bound: float | None = None, energy_fraction: float = 0.5,
                         energy_kind: EnergyKind = "spikes", rates_from: RatesFrom = "fit",
                         first_stage: int | None = None, seed: int = 0,
                         batch_size: int = 32, limit: int | None = None, device: str = "cpu",
                         evaluate: Callable[[Sequence[Sequence[int]]], list[dict[str, Any]]] | None = None
                         ) -> dict[str, Any]:
    """Sample configurations, measure them, fit the accuracy model and the stage rates, search
    the best configuration within the energy bound (absolute, else energy_fraction of the
    measured uniform-T_max energy) and measure it.

    rates_from: "uniform" takes r_i as measured at uniform T_max (the paper's firing rates);
    "fit" fits r_i (non-negative least squares) to the energies measured on the sampled
    configurations, which also captures that coarser frames carry more events per step. The
    energy model's R^2 on the sampled configurations is reported either way.

    `evaluate` (configs -> rows like evaluate_configs) replaces the measurement, e.g. to score
    on another split; by default it is evaluate_configs on `dataset`.
    """
    run = evaluate or (lambda cs: evaluate_configs(model, dataset, cs, batch_size, limit, device))
    s = model.n_stages()
    configs = sample_configs(n_configs, s, t_min, t_max, seed, first_stage=first_stage)
    rows = run(configs)
    fit = fit_sqrt_model([r["config"] for r in rows], [r["accuracy"] for r in rows])
    uniform = next((r for r in rows if r["config"] == [first_stage or t_max] + [t_max] * (s - 1)), None)
    if uniform is None:
        uniform = run([[first_stage or t_max] + [t_max] * (s - 1)])[0]
    key = f"{energy_kind}_per_sample"
    measured_e = np.array([r[key] for r in rows])
    if rates_from == "fit":
        rates, _ = fit_rates([r["config"] for r in rows], measured_e)
    else:
        rates = np.asarray(uniform["stage_spike_rate" if energy_kind == "spikes" else "stage_synops_rate"])
    model_e = energy([r["config"] for r in rows], rates)
    full = float(uniform[key])
    bound = energy_bound if energy_bound is not None else energy_fraction * full
    best = search_best(fit, rates, t_min, t_max, bound, first_stage=first_stage, seed=seed)
    measured = run([best["config"]])[0]
    return {"n_stages": s, "t_min": t_min, "t_max": t_max, "energy_kind": energy_kind, "samples": rows,
            "fit": fit.as_dict(), "rates": rates.tolist(), "rates_from": rates_from,
            "energy_model": {"r2": r_squared(measured_e, model_e), "predicted": model_e.tolist(),
                             "max_rel_error": float(np.max(np.abs(model_e - measured_e) / np.maximum(measured_e, 1e-12)))},
            "uniform_t_max": uniform, "uniform_energy": full,
            "best": {**best, "measured": measured, "within_bound_measured": bool(measured[key] <= bound)}}


def render_search(result: dict[str, Any]) -> str:
    """Markdown: sampled configurations with measured and fitted accuracy, the fit, the choice."""
    fit = result["fit"]
    w = ", ".join(f"{v:+.4f}" for v in fit["w"])
    lines = [f"## Temporal-configuration search ({result['n_stages']} stages, T in "
             f"[{result['t_min']}, {result['t_max']}])", "",
             f"Fit acc ~ sum_i w_i sqrt(T_i) + b: w = [{w}], b = {fit['b']:+.4f}, R^2 = {fit['r2']:.3f}, "
             f"RMSE = {100 * fit['rmse']:.2f} pp, max |residual| = {100 * fit['max_abs_residual']:.2f} pp.", "",
             f"| config | accuracy % | fitted % | {result['energy_kind']}/sample |", "|---|---:|---:|---:|"]
    for row, res in zip(result["samples"], fit["residuals"]):
        lines.append(f"| {tuple(row['config'])} | {100 * row['accuracy']:.2f} | {100 * (row['accuracy'] - res):.2f} | "
                     f"{row[result['energy_kind'] + '_per_sample']:,.0f} |")
    best = result["best"]
    m = best["measured"]
    em = result["energy_model"]
    how = ("fitted to the sampled configurations" if result["rates_from"] == "fit"
           else "measured at uniform T_max")
    lines += ["", f"Stage rates r_i ({result['energy_kind']} per sample and step, {how}): "
              + ", ".join(f"{r:,.1f}" for r in result["rates"])
              + f"; energy model R^2 = {em['r2']:.3f}, max relative error {100 * em['max_rel_error']:.0f}% "
              "on the sampled configurations.",
              f"Best under energy <= {best['energy_bound']:,.0f} (uniform T_max: {result['uniform_energy']:,.0f}; "
              f"{best['method']}): {tuple(best['config'])}, predicted {100 * best['predicted_accuracy']:.2f}%, "
              f"model energy {best['energy']:,.0f}; measured {100 * m['accuracy']:.2f}% with "
              f"{m[result['energy_kind'] + '_per_sample']:,.0f} {result['energy_kind']}/sample "
              f"(uniform T_max: {100 * result['uniform_t_max']['accuracy']:.2f}%)"
              + ("." if best["within_bound_measured"] else "; the measured energy EXCEEDS the bound: the linear "
                 "energy model is off for this configuration.")]
    return "\n".join(lines) + "\n"


def write_search(result: dict[str, Any], folder: Path) -> None:
    """search.json and search.md (the rendered report) in folder."""
    remove_stale_temps(folder)  # an unlocked folder: what killed writers left, nobody else removes
    save_json(result, folder / "search.json")
    save_text(render_search(result), folder / "search.md")
