import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from speck_mtt.checkpoint import make_checkpoint, save_checkpoint
from speck_mtt.errors import FitError, SpeckMttError
from speck_mtt.models import build_model
from speck_mtt.chip.deploy import _synops_from_data, deploy, estimate_synops
from speck_mtt.commands.deploy import deploy_cmd
from speck_mtt.contracts.artifact import FORMAT
from speck_mtt.chip.layout import layout_model

app = typer.Typer()
app.command()(deploy_cmd)


def _checkpoint(tmp_path, arch, name="ckpt.pt", **kwargs):
    torch.manual_seed(0)
    model = build_model(arch, **kwargs)
    path = tmp_path / name
    save_checkpoint(make_checkpoint(model, kwargs, recipe=f"{arch}-mtt", dataset="nmnist-sim"), path)
    return path


@pytest.mark.parametrize("arch,kwargs,n_layers", [("nmnist_3c1fc", {}, 4), ("nmnist_3c1fc", {"head": "membrane"}, 4),
                                                   ("gesture_4c2fc", {"bn": False}, 6)])
def test_deploy_speck2e_offline(tmp_path, arch, kwargs, n_layers):
    ckpt = _checkpoint(tmp_path, arch, **kwargs)
    out = tmp_path / "dep"
    result = CliRunner().invoke(app, [str(ckpt), "--target", "speck2e", "--out", str(out), "--samples", "0", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["fits_chip"] and summary["target"] == "speck2e"
    art = torch.load(out / "artifact.pt", weights_only=True)
    assert art["format"] == FORMAT and art["version"] == 1 and art["arch"] == arch and art["discretized"]
    head = build_model(arch, **kwargs).head
    assert art["head"] == head and art["layers"][-1]["readout"] == ("membrane" if head == "membrane" else "spikes")
    assert len(art["layers"]) == len(art["float_layers"]) == n_layers
    cores = [layer["core"] for layer in art["layers"]]
    assert sorted(set(cores)) == sorted(cores) and all(0 <= c < 9 for c in cores)
    assert json.loads((out / "layout.json").read_text()) == summary
    for layer in summary["layers"]:
        assert layer["memory"]["kernel"] <= layer["core_capacity"]["kernel"]
        assert layer["memory"]["neuron"] <= layer["core_capacity"]["neuron"]
        assert layer["core"] in layer["fits_cores"]
    report = (out / "report.md").read_text()
    assert "**Fits speck2e**" in report and "kernel mem used / core" in report
    assert f"{summary['layers'][0]['memory']['kernel']:,} / {summary['layers'][0]['core_capacity']['kernel']:,}" in report
    model_pt = torch.load(out / "model.pt", weights_only=True)
    assert model_pt["arch"] == arch and model_pt["recipe"] == f"{arch}-mtt"


def test_checkpoint_with_bn_is_refused(tmp_path):
    ckpt = _checkpoint(tmp_path, "gesture_4c2fc", bn=True)
    with pytest.raises(FitError) as info:
        deploy(ckpt, "sim", tmp_path / "dep", samples=0)
    message = str(info.value)
    assert "(4 problems)" in message and message.count("un-absorbed BatchNorm") == 4 and "blocks.0.2 (BatchNorm2d)" in message
    assert f"speck-mtt train gesture_4c2fc-mtt --phase bias-removal --from {ckpt}" in message
    assert not (tmp_path / "dep").exists()


def test_device_needs_speck2e_target(tmp_path):
    ckpt = _checkpoint(tmp_path, "nmnist_3c1fc")
    result = CliRunner().invoke(app, [str(ckpt), "--target", "sim", "--out", str(tmp_path / "d"), "--device", "x"])
    assert isinstance(result.exception, SpeckMttError) and "--target speck2e" in str(result.exception)


@pytest.fixture(scope="module")
def vggsnn_ckpt(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("vgg"), "vggsnn", bn=False)


def test_vggsnn_refused_for_speck2e_with_reasons(vggsnn_ckpt, tmp_path):
    result = CliRunner().invoke(app, [str(vggsnn_ckpt), "--out", str(tmp_path / "d"), "--samples", "0"])
    assert isinstance(result.exception, FitError)
    problems = [str(p) for p in result.exception.problems]
    kernel = [p for p in problems if "kernel memory" in p]
    assert len(kernel) == 7 and "layer 1: blocks.1.0 (Conv2d 64->128, 3x3)" in kernel[0]
    assert any("neuron memory is 131,072 neurons" in p for p in problems)
    assert str(result.exception).startswith("vggsnn does not fit speck2e")


def test_vggsnn_deploys_to_sim(vggsnn_ckpt, tmp_path):
    summary = deploy(vggsnn_ckpt, "sim", tmp_path / "d", samples=0)
    art = torch.load(tmp_path / "d" / "artifact.pt", weights_only=True)
    assert art["input_pool"] == 4 and art["head"] == "membrane" and len(art["layers"]) == 9
    assert all(layer["core"] is None for layer in art["layers"]) and not art["fits_chip"]
    assert len(art["fit_problems"]) == len(summary["fit_problems"]) == 8
    assert art["layers"][-1]["readout"] == "membrane"
    report = (tmp_path / "d" / "report.md").read_text()
    assert "**Does not fit speck2e** (8 problems)" in report and "SynOps not estimated (--samples 0)" in report


def test_synops_counts_each_event_times_its_fan_out():
    layout = layout_model(build_model("nmnist_3c1fc"), "sim")
    frames = torch.zeros(1, 2, 2, 34, 34)
    frames[0, 0, 0, 10, 10] = 1  # interior: reaches 3x3 positions x 8 channels
    frames[0, 1, 1, 0, 0] = 2  # corner, twice: 2x2 positions x 8 channels each
    est = estimate_synops(layout, [frames])
    assert est["samples"] == 1 and est["input_events"] == 3
    assert est["layers"][0]["input_events"] == 3 and est["layers"][0]["synops"] == 72 + 2 * 32


def test_synops_note_when_no_data(tmp_path):
    layout = layout_model(build_model("nmnist_3c1fc"), "sim")
    assert "no dataset" in _synops_from_data(layout, None, tmp_path, 4, 10)["note"]
    assert "--samples 0" in _synops_from_data(layout, "nmnist", tmp_path, 0, 10)["note"]


def test_synops_on_nmnist_sim_with_recipe_meta(tmp_path):
    torch.manual_seed(0)
    model = build_model("nmnist_3c1fc")
    ckpt = tmp_path / "c.pt"
    save_checkpoint(make_checkpoint(model, {}, recipe={"name": "nmnist-mtt", "dataset": "nmnist-sim", "t_max": 4}),
                    ckpt)
    summary = deploy(ckpt, "speck2e", tmp_path / "d", data_dir=tmp_path / "data", samples=2)
    syn = summary["synops"]
    assert syn["dataset"] == "nmnist-sim" and syn["frames"] == 4 and syn["samples"] == 2 and syn["note"] is None
    first = summary["layers"][0]
    assert first["input_events_per_sample"] == pytest.approx(syn["input_events_per_sample"])
    assert 9 * 8 * first["input_events_per_sample"] >= first["synops_per_sample"] > 0  # at most 3x3x8 per event
    assert syn["per_sample"] == pytest.approx(sum(layer["synops_per_sample"] for layer in summary["layers"]))
    assert summary["recipe"] == "nmnist-mtt"
    assert "SynOps per average sample" in (tmp_path / "d" / "report.md").read_text()
