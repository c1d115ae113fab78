"""Temporal-configuration search (paper A.8/A.9, SPEC §2).

A configuration c = (T_1..T_S) gives each MTT stage its own number of time steps. The paper
models accuracy as acc(c) ~ sum_i w_i sqrt(T_i) + b (least squares on ~18 sampled
configurations) and energy as energy(c) ~ sum_i r_i T_i, r_i the firing rate of stage i (here:
spikes, or SynOps, per sample and time step of the stage), then picks the configuration of
highest predicted accuracy within an energy bound.

Pure functions (sampling, both fits, energy, search) plus `search_configuration`, the driver that
measures a SpikingNet on a frame dataset. The rates measured at uniform T_max (the paper's) ignore
that coarser frames carry more events per step and that a TTM upsampling replicates spikes; on
nmnist-sim they under-predicted a searched configuration's energy twofold. The driver therefore
fits the rates to the energies of the sampled configurations by default, reports the energy
model's fit quality, and measures the chosen configuration.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import numpy as np
import torch
import typer

from ..errors import SpeckMttError

Config = tuple[int, ...]
EnergyKind = Literal["spikes", "synops"]
RatesFrom = Literal["fit", "uniform"]


def sample_configs(n: int, n_stages: int, t_min: int, t_max: int, seed: int = 0,
                   include_uniform: bool = True, first_stage: int | None = None) -> list[Config]:
    """n distinct configurations, entries uniform in [t_min, t_max] (inclusive).

    include_uniform adds (t_min,)*S and (t_max,)*S first (they anchor the fit's range);
    first_stage fixes T_1 (event data whose input stage keeps the input frames).
    """
    if not 1 <= t_min <= t_max:
        raise SpeckMttError(f"temporal range [{t_min}, {t_max}] is invalid: need 1 <= T_min <= T_max")
    free = n_stages - (first_stage is not None)
    space = (t_max - t_min + 1) ** free
    if n > space:
        raise SpeckMttError(f"only {space} distinct configurations exist in [{t_min}, {t_max}]^{free}; "
                            f"ask for at most {space}")
    head = () if first_stage is None else (int(first_stage),)
    out: list[Config] = []
    if include_uniform:
        for t in (t_min, t_max):
            c = head + (t,) * free
            if c not in out and len(out) < n:
                out.append(c)
    rng = np.random.default_rng(seed)
    while len(out) < n:
        c = head + tuple(int(v) for v in rng.integers(t_min, t_max + 1, size=free))
        if c not in out:
            out.append(c)
    return out


@dataclass(frozen=True)
class SqrtFit:
    """acc(c) = sum_i w_i sqrt(T_i) + b, with the quality of the least-squares fit."""

    w: np.ndarray  # (S,)
    b: float
    r2: float
    rmse: float
    residuals: np.ndarray  # (n,) measured - predicted

    def predict(self, configs: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
        c = np.atleast_2d(np.asarray(configs, dtype=np.float64))
        return np.sqrt(c) @ self.w + self.b

    def as_dict(self) -> dict[str, Any]:
        return {"w": self.w.tolist(), "b": self.b, "r2": self.r2, "rmse": self.rmse,
                "max_abs_residual": float(np.abs(self.residuals).max()), "residuals": self.residuals.tolist()}


def fit_sqrt_model(configs: Sequence[Sequence[int]], accuracies: Sequence[float]) -> SqrtFit:
    """Least-squares fit of acc ~ sum_i w_i sqrt(T_i) + b (numpy lstsq, minimum-norm if degenerate)."""
    c = np.asarray(configs, dtype=np.float64)
    y = np.asarray(accuracies, dtype=np.float64)
    if c.ndim != 2 or len(c) != len(y):
        raise SpeckMttError(f"need one accuracy per configuration, got {len(y)} for {len(c)}")
    if len(c) < c.shape[1] + 1:
        raise SpeckMttError(f"{len(c)} configurations cannot fit {c.shape[1] + 1} parameters; sample more")
    a = np.hstack([np.sqrt(c), np.ones((len(c), 1))])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    res = y - a @ coef
    return SqrtFit(coef[:-1], float(coef[-1]), _r2(y, a @ coef), float(np.sqrt((res ** 2).mean())), res)


def energy(configs: Sequence[Sequence[int]] | np.ndarray, rates: Sequence[float]) -> np.ndarray:
    """energy(c) = sum_i r_i T_i for each configuration (units of r: per sample and time step)."""
    return np.atleast_2d(np.asarray(configs, dtype=np.float64)) @ np.asarray(rates, dtype=np.float64)


def fit_rates(configs: Sequence[Sequence[int]], energies: Sequence[float]) -> tuple[np.ndarray, float]:
    """Non-negative least squares of energy ~ sum_i r_i T_i on measured configurations -> (rates, R^2).

    Active set: a stage whose rate comes out negative is fixed at 0 and the rest refitted.
    """
    c = np.asarray(configs, dtype=np.float64)
    y = np.asarray(energies, dtype=np.float64)
    free = np.ones(c.shape[1], dtype=bool)
    rates = np.zeros(c.shape[1])
    while free.any():
        coef, *_ = np.linalg.lstsq(c[:, free], y, rcond=None)
        if (coef >= 0).all():
            rates[free] = coef
            break
        free[np.flatnonzero(free)[coef < 0]] = False
    return rates, _r2(y, c @ rates)


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - pred) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")


def _greedy(fit: SqrtFit, rates: np.ndarray, lo: np.ndarray, hi: np.ndarray, bound: float) -> Config:
    """From the lower corner, raise the stage of best predicted gain per unit energy while in bound."""
    c = lo.copy()
    while True:
        best, best_score = None, -np.inf
        for i in range(len(c)):
            if c[i] >= hi[i]:
                continue
            step = c.copy()
            step[i] += 1
            if energy(step, rates)[0] > bound:
                continue
            gain = fit.w[i] * (np.sqrt(step[i]) - np.sqrt(c[i]))
            score = gain / rates[i] if rates[i] > 0 else (np.inf if gain > 0 else gain)
            if gain > 0 and score > best_score:
                best, best_score = i, score
        if best is None:
            return tuple(int(v) for v in c)
        c[best] += 1


def search_best(fit: SqrtFit, rates: Sequence[float], t_min: int, t_max: int, energy_bound: float,
                first_stage: int | None = None, max_exhaustive: int = 200_000, n_random: int = 20_000,
                seed: int = 0) -> dict[str, Any]:
    """The configuration of highest predicted accuracy with energy(c) <= energy_bound.

    Exhaustive over [t_min, t_max]^S when that grid has at most max_exhaustive points, otherwise
    the better of a greedy ascent and n_random random feasible draws. Ties: lower energy wins.
    """
    r = np.asarray(rates, dtype=np.float64)
    s = len(r)
    lo = np.full(s, t_min)
    hi = np.full(s, t_max)
    if first_stage is not None:
        lo[0] = hi[0] = first_stage
    e_min = float(energy(lo, r)[0])
    if e_min > energy_bound:
        raise SpeckMttError(f"energy bound {energy_bound:,.4g} is below the cheapest configuration "
                            f"{tuple(int(v) for v in lo)} ({e_min:,.4g}); raise the bound")
    size = int(np.prod(hi - lo + 1))
    if size <= max_exhaustive:
        cands = np.array(list(itertools.product(*[range(a, b + 1) for a, b in zip(lo, hi)])))
        method = "exhaustive"
    else:
        rng = np.random.default_rng(seed)
        cands = np.vstack([np.array(_greedy(fit, r, lo, hi, energy_bound))[None],
                           rng.integers(lo, hi + 1, size=(n_random, s))])
        method = "greedy+random"
    e = energy(cands, r)
    ok = e <= energy_bound
    cands, e = cands[ok], e[ok]
    pred = fit.predict(cands)
    best = np.lexsort((e, -np.round(pred, 12)))[0]  # rounding: float noise must not beat lower energy
    return {"config": [int(v) for v in cands[best]], "predicted_accuracy": float(pred[best]),
            "energy": float(e[best]), "energy_bound": float(energy_bound), "method": method,
            "candidates": int(size), "feasible_evaluated": int(ok.sum())}


# ---------------------------------------------------------------------------------------------
# Driver on a SpikingNet
# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def evaluate_configs(model, dataset, configs: Sequence[Sequence[int]], batch_size: int = 32,
                     limit: int | None = None, device: str = "cpu") -> list[dict[str, Any]]:
    """Accuracy, spikes and SynOps per sample for each configuration, plus per-stage counts
    per sample and time step (the stage rates r_i)."""
    from ..dynamic import SpikeRecorder, _batches, _check_input

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
            for frames, label in _batches(dataset, batch_size, limit):
                _check_input(model, frames)
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
            "energy_model": {"r2": _r2(measured_e, model_e), "predicted": model_e.tolist(),
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
    from ..files import save_json, save_text

    save_json(result, folder / "search.json")
    save_text(render_search(result), folder / "search.md")


def search_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint written by `speck-mtt train` (an MTT model).")],
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset (default: the checkpoint's).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Dataset root (default $SPECK_MTT_DATA "
                                                                        "or ./data).")] = None,
    t_min: Annotated[int, typer.Option("--t-min", min=1, help="Smallest T of a stage.")] = 1,
    t_max: Annotated[Optional[int], typer.Option("--t-max", min=1, help="Largest T of a stage and frames of the "
                                                                        "data (default: the checkpoint's).")] = None,
    configs: Annotated[int, typer.Option("--configs", min=2, help="Configurations sampled for the fit "
                                                                  "(paper: 18).")] = 18,
    energy_fraction: Annotated[float, typer.Option("--energy-fraction", min=0.0, help="Energy bound as a fraction "
                                                                                      "of uniform T_max.")] = 0.5,
    energy_bound: Annotated[Optional[float], typer.Option("--energy-bound", min=0.0, help="Absolute energy bound "
                                                                                          "(overrides the fraction).")]
    = None,
    energy_kind: Annotated[str, typer.Option("--energy", help="spikes | synops: what the stage rates count.")]
    = "spikes",
    rates_from: Annotated[str, typer.Option("--rates", help="fit: stage rates fitted to the sampled "
                                                            "configurations' energies; uniform: measured at "
                                                            "uniform T_max (the paper's).")] = "fit",
    samples: Annotated[Optional[int], typer.Option("--samples", min=1, help="Test samples (default: all).")] = None,
    keep_input_stage: Annotated[bool, typer.Option("--keep-input-stage/--search-input-stage",
                                                   help="Keep stage 1 at the input frames (T_max), as MTT "
                                                        "training does for event data, or search it too.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sampled configurations.")] = 0,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write search.json and search.md here.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Temporal-configuration search (paper A.8/A.9): fit acc ~ sum_i w_i sqrt(T_i) + b on sampled
    stage-wise T, then the best configuration within an energy bound."""
    from ..dynamic import checkpoint_and_test_frames
    from ..files import dumps_json

    if energy_kind not in ("spikes", "synops"):
        raise SpeckMttError(f"--energy {energy_kind!r}: choose spikes or synops")
    if rates_from not in ("fit", "uniform"):
        raise SpeckMttError(f"--rates {rates_from!r}: choose fit or uniform")
    model, data, t, _ = checkpoint_and_test_frames(checkpoint, dataset, data_dir, t_max, samples)
    result = search_configuration(model, data, t_min, t, configs, energy_bound, energy_fraction, energy_kind,
                                  rates_from, first_stage=t if keep_input_stage else None, seed=seed)
    if out is not None:
        write_search(result, Path(out))
    typer.echo(dumps_json(result) if json_out else render_search(result))
