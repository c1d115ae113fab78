"""Accuracy at every T from frames at T_max, saved as JSON/CSV and plotted."""

import json

import pytest
import torch

from speck_mtt.evaluate import evaluate, save_eval
from speck_mtt.models import build_model
from speck_mtt.timegroups import resample_time
from speck_mtt.plots import plot_accuracy_vs_t


def test_evaluate_matches_manual_uniform_configs(tmp_path):
    torch.manual_seed(0)
    model = build_model("nmnist_3c1fc")
    x = torch.poisson(torch.full((6, 5, 2, 34, 34), 1.0)) * 3
    y = torch.randint(0, 10, (6,))
    res = evaluate(model, [(x[:4], y[:4]), (x[4:], y[4:])], [1, 3, 5])
    assert res["t"] == [1, 3, 5] and res["n_samples"] == 6
    for t, acc in zip(res["t"], res["accuracy"]):
        with torch.no_grad():
            pred = model(resample_time(x, t, dim=1), [t] * 4).mean(1).argmax(1)
        assert acc == pytest.approx((pred == y).float().mean().item())
    save_eval(res, tmp_path / "eval")
    assert json.loads((tmp_path / "eval.json").read_text())["accuracy"] == res["accuracy"]
    lines = (tmp_path / "eval.csv").read_text().splitlines()
    assert lines[0] == "t,accuracy" and len(lines) == 4 and lines[2].startswith("3,")
    png = plot_accuracy_vs_t({"a": res, "b": json.loads((tmp_path / "eval.json").read_text())}, tmp_path / "fig.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"



def test_figures_leave_pyplot_and_the_backend_alone(tmp_path, monkeypatch):
    """A notebook's backend and open figures stay as they were (Figure API, no matplotlib.use)."""
    import matplotlib
    import matplotlib.pyplot as plt

    backend, figures = matplotlib.get_backend(), plt.get_fignums()
    monkeypatch.setattr(matplotlib, "use", lambda *a, **k: pytest.fail("matplotlib.use called"))
    plot_accuracy_vs_t({"a": {"t": [1, 2], "accuracy": [0.5, 0.6]}}, tmp_path / "fig.png")
    assert matplotlib.get_backend() == backend and plt.get_fignums() == figures
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]  # no temporary file left
