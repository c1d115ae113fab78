"""`speck-mtt measure` on a tiny deployed 3C1FC and a few nmnist-sim samples."""

import json
import math

import numpy as np
import pytest
import torch

from speck_mtt.checkpoint import make_checkpoint, save_checkpoint
from speck_mtt.errors import DataError, SpeckMttError
from speck_mtt.contracts.recording import Recording, load_recording, save_recording
from speck_mtt.measure import measure
from speck_mtt.models import build_model
from speck_mtt.chip.deploy import deploy


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("measure")
    torch.manual_seed(0)
    model = build_model("nmnist_3c1fc")
    with torch.no_grad():  # positive weights: every layer fires, so SD against torch is defined
        for p in model.parameters():
            p.abs_()
    save_checkpoint(make_checkpoint(model, {"floor": -8.0}), tmp / "ckpt.pt")
    deploy(tmp / "ckpt.pt", "sim", tmp / "dep", samples=0)
    return tmp


def test_measure_sim_against_torch_and_recordings(deployed):
    dep, data = deployed / "dep", deployed / "data"
    rec_path = deployed / "run1.npz"
    report = measure(dep, dataset="nmnist-sim", data_dir=data, limit=6, t=[4], workers=2, record=rec_path)
    assert report["n_samples"] == 6 and report["backend"] == "sim"
    assert report["synops_per_sample"] > report["input_events_per_sample"] > 0
    assert report["samples_per_s"] > 0 and 0 <= report["accuracy"] <= 1
    row = report["torch"][0]
    assert row["t"] == 4 and row["n_samples"] == 6 and 0 < row["sd"] < math.inf
    # the paired drop counts the same samples both ways: its difference is the accuracy difference
    assert row["n_paired"] == 6 and row["drop_se_pp"] >= 0
    assert row["drop_pp"] == pytest.approx(100 * (row["accuracy"] - report["accuracy"]))
    assert row["drop_pp"] == pytest.approx(100 * (row["reference_only"] - row["other_only"]) / 6)
    written = json.loads((dep / "measure-sim.json").read_text())
    assert written["torch"][0]["sd"] == row["sd"]
    rec = load_recording(rec_path)
    assert rec.counts.shape == (6, 10) and rec.meta["backend"] == "sim"
    assert rec.sample_ids.tolist() == list(range(6))
    # the simulator is deterministic: the same run compared with its recording has SD 0
    again = measure(dep, dataset="nmnist-sim", data_dir=data, limit=6, compare=[rec_path], workers=1,
                    out=deployed / "again.json")
    assert again["compare"][0]["sd"] == 0 and again["compare"][0]["n_common"] == 6
    # against a reference with twice the spikes: |N - 2N| / 2N = 0.5
    assert rec.counts.sum() > 0
    other = Recording(rec.counts * 2, rec.labels, rec.sample_ids, meta={"backend": "speck2e"})
    save_recording(other, deployed / "other")
    vs = measure(dep, dataset="nmnist-sim", data_dir=data, limit=6, compare=[deployed / "other.npz"],
                 out=deployed / "vs.json")
    assert vs["compare"][0]["sd"] == pytest.approx(0.5) and vs["compare"][0]["reference_backend"] == "speck2e"


def test_measure_rejects_wrong_sensor(deployed):
    with pytest.raises(DataError, match="128x128 sensor"):
        measure(deployed / "dep", dataset="gesture-sim", data_dir=deployed / "data", limit=1)


def test_measure_missing_artifact(tmp_path):
    with pytest.raises(SpeckMttError, match="no deploy artifact"):
        measure(tmp_path, dataset="nmnist-sim")


def test_recording_errors(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SpeckMttError, match="not a speck-mtt recording"):
        load_recording(bad)
    with pytest.raises(SpeckMttError, match="counts must be"):
        Recording(np.zeros(3), np.zeros(3), np.zeros(3))


def test_measure_cli_search_config(tmp_path):
    """`measure --search-config` runs the configuration search on DEPLOY_DIR/model.pt beside the measurement."""
    from typer.testing import CliRunner

    from speck_mtt.cli import app

    torch.manual_seed(0)
    model = build_model("nmnist_3c1fc")
    save_checkpoint(make_checkpoint(model, {}, dataset="nmnist-sim", t_max=3), tmp_path / "ckpt.pt")
    deploy(tmp_path / "ckpt.pt", "sim", tmp_path / "dep", samples=0)
    res = CliRunner().invoke(app, ["measure", str(tmp_path / "dep"), "--dataset", "nmnist-sim", "--data-dir",
                                   str(tmp_path / "data"), "--limit", "4", "--workers", "1", "--search-config",
                                   "--json"])
    assert res.exit_code == 0, res.output
    search = json.loads(res.stdout)["search"]
    assert len(search["samples"]) == 18 and all(1 <= t <= 3 for row in search["samples"] for t in row["config"])
    assert json.loads((tmp_path / "dep" / "search.json").read_text())["fit"] == search["fit"]
    assert (tmp_path / "dep" / "search.md").read_text().startswith("## Temporal-configuration search")


def test_floor_sweep_and_layer_diagnosis(deployed):
    dep, data = deployed / "dep", deployed / "data"
    report = measure(dep, dataset="nmnist-sim", data_dir=data, limit=6, t=[4], workers=1, floors=[-1.0, -8.0, -100.0],
                     out=deployed / "sweep.json")
    assert report["floor"] == -8.0  # the floor the checkpoint was built with
    by_floor = {row["floor"]: row for row in report["floors"]}
    assert by_floor[-8.0]["accuracy"] == report["accuracy"]  # the sweep at the deployed floor is the main run
    assert by_floor[-8.0]["torch"][0]["sd"] == pytest.approx(report["torch"][0]["sd"])
    hits = [by_floor[f]["floor_hits_per_sample"] for f in (-1.0, -8.0, -100.0)]
    assert hits[0] >= hits[1] >= hits[2]  # a deeper floor is hit less often
    layers = report["torch"][0]["layers"]
    assert [row["layer"] for row in layers] == [0, 1, 2, 3]
    assert layers[-1]["sd"] == pytest.approx(report["torch"][0]["sd"])  # the last layer is what SD compares
    assert all(row["torch_spikes_per_sample"] > 0 for row in layers)
    for row in report["layers"]:
        assert {"floor_hits_per_sample", "held_spikes_per_sample", "top_saturations_per_sample"} <= set(row)
