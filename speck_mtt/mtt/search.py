"""Temporal-configuration search, the pure maths (paper A.8/A.9, docs/design.md#ttm-grouping).

A configuration c = (T_1..T_S) gives each MTT stage its own number of time steps. The paper
models accuracy as acc(c) ~ sum_i w_i sqrt(T_i) + b (least squares on ~18 sampled
configurations) and energy as energy(c) ~ sum_i r_i T_i, r_i the firing rate of stage i (here:
spikes, or SynOps, per sample and time step of the stage), then picks the configuration of
highest predicted accuracy within an energy bound.

Pure functions here; the driver that measures a SpikingNet on a frame dataset (and why it fits
the stage rates by default) is speck_mtt.analysis.config_search.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import SpeckMttError

Config = tuple[int, ...]
EnergyKind = Literal["spikes", "synops"]  # choices.Energy
RatesFrom = Literal["fit", "uniform"]  # choices.Rates


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
    return SqrtFit(coef[:-1], float(coef[-1]), r_squared(y, a @ coef), float(np.sqrt((res ** 2).mean())), res)


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
    return rates, r_squared(y, c @ rates)


def r_squared(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination of pred against y (nan when y is constant)."""
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
