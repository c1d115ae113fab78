"""Temporal-configuration search: sampling, the sqrt accuracy fit, energy-bounded search."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from speck_mtt.errors import SpeckMttError
from speck_mtt.models import build_model
from speck_mtt.analysis.config_search import evaluate_configs, render_search, search_configuration
from speck_mtt.mtt.search import energy, fit_rates, fit_sqrt_model, sample_configs, search_best


def test_sample_configs_in_range_and_distinct():
    cs = sample_configs(18, 3, 2, 7, seed=1)
    assert len(cs) == 18 and len(set(cs)) == 18
    assert cs[:2] == [(2, 2, 2), (7, 7, 7)]
    assert all(2 <= t <= 7 for c in cs for t in c)
    assert sample_configs(18, 3, 2, 7, seed=1) == cs
    fixed = sample_configs(5, 3, 1, 4, first_stage=10)
    assert all(c[0] == 10 for c in fixed)
    with pytest.raises(SpeckMttError, match="distinct configurations"):
        sample_configs(10, 2, 1, 2)
    with pytest.raises(SpeckMttError, match="invalid"):
        sample_configs(3, 2, 5, 4)


def test_fit_recovers_known_coefficients():
    w, b = np.array([0.03, 0.08, -0.01]), 0.42
    cs = sample_configs(18, 3, 1, 10, seed=3)
    acc = np.sqrt(np.array(cs, float)) @ w + b
    fit = fit_sqrt_model(cs, acc)
    assert np.allclose(fit.w, w) and fit.b == pytest.approx(b)
    assert fit.r2 == pytest.approx(1.0) and fit.rmse < 1e-10
    # with noise: still close, and the quality numbers say how close
    rng = np.random.default_rng(0)
    noisy = acc + rng.normal(0, 0.002, len(acc))
    fit = fit_sqrt_model(cs, noisy)
    assert np.abs(fit.w - w).max() < 0.01 and 0.95 < fit.r2 < 1.0
    assert fit.residuals == pytest.approx(noisy - fit.predict(cs))
    assert fit.as_dict()["max_abs_residual"] > 0
    with pytest.raises(SpeckMttError, match="cannot fit"):
        fit_sqrt_model(cs[:3], acc[:3])


def test_fit_rates_non_negative():
    cs = np.array(sample_configs(18, 3, 1, 10, seed=2), float)
    rates, r2 = fit_rates(cs, cs @ [5.0, 0.5, 2.0])
    assert np.allclose(rates, [5.0, 0.5, 2.0]) and r2 == pytest.approx(1.0)
    # a stage that would need a negative rate is held at 0 and the others refitted
    y = cs @ [5.0, 0.0, 2.0] - 0.3 * cs[:, 1]
    rates, r2 = fit_rates(cs, y)
    assert rates[1] == 0 and (rates >= 0).all() and r2 < 1.0


def _brute(fit, rates, lo, hi, bound):
    best = None
    for c in itertools.product(range(lo, hi + 1), repeat=len(rates)):
        if energy(c, rates)[0] <= bound:
            p = fit.predict(c)[0]
            if best is None or p > best[0] + 1e-12:
                best = (p, c)
    return best


def test_search_respects_energy_bound_and_is_optimal():
    cs = sample_configs(18, 3, 1, 8, seed=0)
    w = np.array([0.02, 0.1, 0.05])
    fit = fit_sqrt_model(cs, np.sqrt(np.array(cs, float)) @ w + 0.3)
    rates = [5.0, 40.0, 10.0]
    for bound in (60.0, 200.0, 400.0):
        res = search_best(fit, rates, 1, 8, bound)
        assert res["method"] == "exhaustive" and res["energy"] <= bound
        assert energy(res["config"], rates)[0] == pytest.approx(res["energy"])
        p, c = _brute(fit, rates, 1, 8, bound)
        assert res["predicted_accuracy"] == pytest.approx(p)
    # unbounded: every stage at T_max
    assert search_best(fit, rates, 1, 8, 1e9)["config"] == [8, 8, 8]
    with pytest.raises(SpeckMttError, match="below the cheapest"):
        search_best(fit, rates, 2, 8, 50.0)


def test_greedy_path_respects_bound():
    cs = sample_configs(18, 6, 1, 30, seed=0)
    w = np.linspace(0.01, 0.06, 6)
    fit = fit_sqrt_model(cs, np.sqrt(np.array(cs, float)) @ w + 0.2)
    rates = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0])
    res = search_best(fit, rates, 1, 30, 200.0, max_exhaustive=1000, n_random=2000)
    assert res["method"] == "greedy+random" and res["energy"] <= 200.0
    # greedy by gain per energy is near the best random feasible draw of many more samples
    rng = np.random.default_rng(1)
    draws = rng.integers(1, 31, size=(50_000, 6))
    draws = draws[energy(draws, rates) <= 200.0]
    assert res["predicted_accuracy"] >= fit.predict(draws).max() - 1e-9


def _model():
    torch.manual_seed(0)
    model = build_model("nmnist_3c1fc")
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.weight.data *= 4.0
    return model


def test_driver_on_a_spiking_net():
    model = _model()
    g = torch.Generator().manual_seed(0)
    data = [((torch.rand((4, 2, 34, 34), generator=g) < 0.05).float() * 2, i % 10) for i in range(4)]
    rows = evaluate_configs(model, data, [(4, 4, 4, 4), (4, 2, 1, 3)])
    # stage rates: spikes per sample and time step of each stage (one IF layer per stage here)
    assert len(rows[0]["stage_spike_rate"]) == 4 and rows[0]["stage_spike_rate"][0] > 0
    assert rows[0]["spikes_per_sample"] == pytest.approx(4 * sum(rows[0]["stage_spike_rate"]))
    assert rows[1]["spikes_per_sample"] == pytest.approx(
        float(np.dot(rows[1]["stage_spike_rate"], [4, 2, 1, 3])))
    res = search_configuration(model, data, 1, 4, n_configs=6, energy_fraction=0.5)
    assert len(res["samples"]) == 6 and res["best"]["energy"] <= 0.5 * res["uniform_energy"] + 1e-9
    assert res["best"]["measured"]["config"] == res["best"]["config"]
    assert res["uniform_t_max"]["config"] == [4, 4, 4, 4]
    assert "Temporal-configuration search" in render_search(res)


def test_driver_with_callback():
    """A callback evaluator (any scorer); the fit sees exactly its accuracies."""
    w, b = np.array([0.05, 0.02]), 0.5

    class Two(nn.Module):
        def n_stages(self):
            return 2

    def score(configs):
        return [{"config": list(c), "accuracy": float(np.sqrt(np.array(c, float)) @ w + b),
                 "spikes_per_sample": float(c[0] + 3 * c[1]), "synops_per_sample": 0.0,
                 "stage_spike_rate": [1.0, 3.0], "stage_synops_rate": [0.0, 0.0]} for c in configs]

    res = search_configuration(Two(), None, 1, 6, n_configs=8, energy_bound=10.0, evaluate=score)
    assert np.allclose(res["fit"]["w"], w) and res["fit"]["b"] == pytest.approx(b)
    assert np.allclose(res["rates"], [1.0, 3.0]) and res["energy_model"]["r2"] == pytest.approx(1.0)
    assert res["best"]["within_bound_measured"]
    assert res["best"]["energy"] <= 10.0 and res["best"]["config"] == [6, 1]  # T1 + 3 T2 <= 10: (6,1) beats (4,2)


def test_search_cli_on_nmnist_sim(tmp_path):
    import json

    import typer
    from typer.testing import CliRunner

    from speck_mtt.checkpoint import make_checkpoint, save_checkpoint
    from speck_mtt.commands.search import search_cmd

    save_checkpoint(make_checkpoint(_model(), {}, recipe={"data": {"dataset": "nmnist-sim"}}, t_max=3),
                    tmp_path / "model.pt")
    app = typer.Typer()
    app.command()(search_cmd)
    res = CliRunner().invoke(app, [str(tmp_path / "model.pt"), "--data-dir", str(tmp_path / "data"), "--samples", "3",
                                   "--configs", "6", "--energy", "synops", "--keep-input-stage", "--rates", "uniform",
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "Temporal-configuration search (4 stages, T in [1, 3])" in res.output
    saved = json.loads((tmp_path / "out" / "search.json").read_text())
    assert all(s["config"][0] == 3 for s in saved["samples"]) and saved["best"]["config"][0] == 3
    assert saved["best"]["energy"] <= 0.5 * saved["uniform_energy"]
