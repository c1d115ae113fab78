"""Table-5 report builder on fabricated result folders (the file names train/deploy/measure write)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from speck_mtt.errors import SpeckMttError
from speck_mtt.contracts.recording import Recording, save_recording
from speck_mtt.contracts.sd import spike_difference
from speck_mtt.commands.report import report_cmd
from speck_mtt.report import build_report, render_report, write_report


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _cells(md: str, prefix: str) -> list[str]:
    line = next(x for x in md.splitlines() if x.startswith(prefix))
    return [c.strip() for c in line.strip().strip("|").split("|")]


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "runs"
    _write(root / "run.json", {"dataset": "nmnist-sim"})
    _write(root / "mtt" / "eval.json", {"t": [1, 2, 3], "accuracy": [0.90, 0.95, 0.97], "n_samples": 100})
    _write(root / "mtt" / "deploy" / "measure-sim.json",
           {"accuracy": 0.96, "n_samples": 40, "dataset": "nmnist-sim", "spikes_per_sample": 1234.0,
            "torch": [{"t": 2, "accuracy": 0.9, "sd": 0.2}, {"t": 3, "accuracy": 0.975, "sd": 0.12}]})
    _write(root / "sdt" / "eval.json", {"t": [1, 2, 3], "accuracy": [0.5, 0.8, 0.93], "n_samples": 100})
    _write(root / "sdt" / "measure-sim.json", {"accuracy": 0.85, "n_samples": 100, "torch": []})
    return root


def test_table_rows_and_missing_chip(results):
    rep = build_report(results)
    assert [r["method"] for r in rep["rows"]] == ["mtt", "sdt"]
    mtt, sdt = rep["rows"]
    assert mtt["t"] == 3 and mtt["torch_accuracy"] == 0.97 and mtt["sim_accuracy"] == 0.96
    # the drop compares torch and simulator on the same 40 samples (measure's torch entry at T=3)
    assert mtt["drop_torch_to_sim_pp"] == pytest.approx(1.5) and mtt["sd_torch_vs_sim"] == 0.12
    assert sdt["t"] == 3 and sdt["drop_torch_to_sim_pp"] == pytest.approx(8.0) and sdt["sd_torch_vs_sim"] is None
    assert sdt["drop_basis"].startswith("eval.json") and "without --t" in sdt["note"]
    assert mtt["speck_accuracy"] is None and mtt["sd_sim_vs_chip"] is None and mtt["n_weights"] is None
    md = render_report(rep)
    assert _cells(md, "| MTT | 3 |") == ["MTT", "3", "97.00", "96.00", "-", "1.50", "-", "12.00", "-", "-"]
    assert _cells(md, "| SDT | 3 |")[:6] == ["SDT", "3", "93.00", "85.00", "-", "8.00"]
    assert "offline simulated stand-in" in md and "| MTT | 90.0 | 95.0 | 97.0 |" in md
    # the paper's numbers are a separate, labelled table
    assert "Paper reference" in md and "| MTT | 99.16 | 98.56 | 98.57 | 0.60 |" in md
    assert rep["paper"]["dataset"] == "nmnist" and rep["stand_in"]


def test_chosen_t(results):
    mtt, sdt = build_report(results, t=2)["rows"]
    assert mtt["torch_accuracy"] == 0.95 and mtt["sd_torch_vs_sim"] == 0.2
    assert mtt["drop_torch_to_sim_pp"] == pytest.approx(-6.0)
    _write(results / "mtt" / "deploy" / "measure-sim.json", {"accuracy": 0.9, "torch": [{"t": 3, "sd": 0.1,
                                                                                         "accuracy": 0.9}]})
    mtt = build_report(results, t=1)["rows"][0]
    assert mtt["sd_torch_vs_sim"] is None and "T=[3] only" in mtt["note"]


def test_chip_runs_give_sd_from_recordings(results):
    rng = np.random.default_rng(0)
    sim = rng.integers(0, 20, size=(6, 10))
    chip1 = sim + rng.integers(0, 3, size=sim.shape)
    chip2 = chip1 + rng.integers(0, 2, size=sim.shape)
    labels = np.arange(6) % 10
    deploy = results / "mtt" / "deploy"
    save_recording(Recording(sim, labels, np.arange(6)), deploy / "sim-counts.npz")
    data = json.loads((deploy / "measure-sim.json").read_text())
    _write(deploy / "measure-sim.json", {**data, "record": "somewhere/else/sim-counts.npz"})
    # chip run 1 recorded samples 1..5 only, out of order: matched by sample id
    order = np.array([5, 3, 1, 2, 4])
    save_recording(Recording(chip1[order], labels[order], order), deploy / "measure-speck2e.npz")
    _write(deploy / "measure-speck2e.json", {"accuracy": 0.9, "backend": "speck2e"})
    # run 2: a recording alone; its accuracy comes from its predictions (4 of 6 right)
    preds = labels.copy()
    preds[:2] += 1
    save_recording(Recording(chip2, labels, np.arange(6), preds), deploy / "measure-speck2e-2.npz")
    row = build_report(results)["rows"][0]
    assert [r["accuracy"] for r in row["speck_runs"]] == pytest.approx([0.9, 4 / 6])
    assert row["speck_accuracy"] == pytest.approx((0.9 + 4 / 6) / 2)
    ids = np.sort(order)
    assert row["sd_sim_vs_chip"] == pytest.approx(spike_difference(sim[ids], chip1[ids]).pooled)
    assert row["sd_chip_vs_chip"] == pytest.approx(spike_difference(chip2[ids], chip1[ids]).pooled)
    assert 0 < row["sd_chip_vs_chip"] < row["sd_sim_vs_chip"]
    md = render_report(build_report(results))
    assert "mean of 2 chip runs" in md
    assert _cells(md, "| MTT | 3 |")[-1] == f"{100 * row['sd_chip_vs_chip']:.2f}"
    # a chip run that shares no sample with the simulator is a clear error
    save_recording(Recording(sim[:1], labels[:1], np.array([99])), deploy / "sim-counts.npz")
    with pytest.raises(SpeckMttError, match="sim vs chip: the recordings share no sample id"):
        build_report(results)


def test_chip_sd_from_compare_entries(results):
    deploy = results / "mtt" / "deploy"
    _write(deploy / "measure-speck2e.json", {"accuracy": 0.95, "compare": [{"reference_backend": "sim", "sd": 0.04}]})
    _write(deploy / "measure-speck2e-2.json", {"accuracy": 0.93,
                                               "compare": [{"reference_backend": "speck2e", "sd": 0.03}]})
    row = build_report(results)["rows"][0]
    assert row["sd_sim_vs_chip"] == 0.04 and row["sd_chip_vs_chip"] == 0.03
    assert row["speck_accuracy"] == pytest.approx(0.94)


def test_write_outputs_and_cli(results, tmp_path, monkeypatch):
    import matplotlib

    monkeypatch.setattr(matplotlib, "use", lambda *a, **k: pytest.fail("matplotlib.use called"))  # a notebook's backend stays
    out = tmp_path / "out"
    write_report(results, out)
    saved = json.loads((out / "report.json").read_text())
    assert saved["rows"][1]["sim_accuracy"] == 0.85
    assert (out / "report.md").read_text().startswith("# Table 5: nmnist-sim")
    png = (out / "accuracy_vs_t.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000

    app = typer.Typer()
    app.command()(report_cmd)
    res = CliRunner().invoke(app, [str(results), "--json", "--no-plot", "--out", str(tmp_path / "o2")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["rows"][0]["method"] == "mtt"
    assert not (tmp_path / "o2" / "accuracy_vs_t.png").exists()


def test_bad_inputs(tmp_path):
    with pytest.raises(SpeckMttError, match="no such results folder"):
        build_report(tmp_path / "absent")
    (tmp_path / "empty" / "mtt").mkdir(parents=True)
    with pytest.raises(SpeckMttError, match="no method folder"):
        build_report(tmp_path / "empty")
    _write(tmp_path / "pct" / "mtt" / "eval.json", {"t": [1], "accuracy": [97.0]})
    with pytest.raises(SpeckMttError, match="not a fraction"):
        build_report(tmp_path / "pct")
    _write(tmp_path / "short" / "mtt" / "eval.json", {"t": [1, 2], "accuracy": [0.9]})
    with pytest.raises(SpeckMttError, match="not an evaluation result"):
        build_report(tmp_path / "short")
    (tmp_path / "bad" / "sdt").mkdir(parents=True)
    (tmp_path / "bad" / "sdt" / "measure-sim.json").write_text("{not json")
    with pytest.raises(SpeckMttError, match="cannot be read as JSON"):
        build_report(tmp_path / "bad")


def test_parameter_count_from_checkpoint(tmp_path):
    from speck_mtt.checkpoint import make_checkpoint, save_checkpoint
    from speck_mtt.models import build_model

    model = build_model("nmnist_3c1fc")
    save_checkpoint(make_checkpoint(model, {}), tmp_path / "r" / "mtt" / "deploy" / "model.pt")
    _write(tmp_path / "r" / "mtt" / "deploy" / "measure-sim.json", {"accuracy": 0.5, "dataset": "gesture"})
    rep = build_report(tmp_path / "r")
    assert rep["rows"][0]["n_weights"] == 6160 and rep["rows"][0]["torch_accuracy"] is None
    assert rep["paper"]["dataset"] == "gesture" and not rep["stand_in"]
    assert _cells(render_report(rep), "| MTT |")[:7] == ["MTT", "-", "-", "50.00", "-", "-", "6,160"]


def test_real_recording_rows(results):
    deploy = results / "mtt" / "deploy"
    _write(deploy / "measure-sim-nmnist-real800.json",
           {"accuracy": 0.80, "n_samples": 800, "dataset": "nmnist-real800",
            "torch": [{"t": 3, "accuracy": 0.875, "sd": 0.25, "drop_se_pp": 1.25}]})
    rep = build_report(results)
    mtt, sdt = rep["rows"]
    assert mtt["real"] == {"dataset": "nmnist-real800", "n_samples": 800, "t": 3, "torch_accuracy": 0.875,
                           "sim_accuracy": 0.80, "drop_torch_to_sim_pp": pytest.approx(7.5), "drop_se_pp": 1.25,
                           "sd_torch_vs_sim": 0.25}
    assert sdt["real"] is None and rep["real_label"] == "real N-MNIST (800, train split ids 1-800)"
    assert mtt["sim_accuracy"] == 0.96  # the stand-in row is untouched
    md = render_report(rep)
    assert "Real recordings, real N-MNIST (800, train split ids 1-800)" in md and "trained on nmnist-sim only" in md
    assert _cells(md, "| MTT (real N-MNIST) |") == ["MTT (real N-MNIST)", "3", "87.50", "80.00", "7.50 ± 1.25", "25.00",
                                                    "800"]
    assert json.loads(json.dumps(rep))["rows"][0]["real"]["torch_accuracy"] == 0.875
    (deploy / "measure-sim-nmnist-real800.json").unlink()  # no real measurement: no real table
    assert "Real recordings" not in render_report(build_report(results))


def test_bias_removal_rows_compare_the_base_at_its_t_max(results):
    _write(results / "mtt" / "base" / "eval.json", {"t": [1, 2], "accuracy": [0.9, 0.98], "n_samples": 100})
    rep = build_report(results)
    mtt, sdt = rep["rows"]
    assert mtt["bias_removal"] == {"t": 2, "base_accuracy": 0.98, "bias_free_accuracy": 0.95,
                                   "cost_pp": pytest.approx(3.0)}
    assert sdt["bias_removal"] is None  # no base/eval.json
    md = render_report(rep)
    assert _cells(md, "| MTT | 2 |") == ["MTT", "2", "98.00", "95.00", "3.00", "97.00 (T=3)", "96.00"]
    assert "| SDT | 2 |" not in md
