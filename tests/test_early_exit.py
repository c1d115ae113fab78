"""Early exit over time steps, and the spike/SynOps energy proxy of a torch forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from speck_mtt.analysis.early_exit import (accuracy_per_step, confidence, dynamic_report, early_exit, energy_at_t,
                                           render_dynamic, run_stepwise, threshold_sweep)
from speck_mtt.analysis.probe import SpikeRecorder
from speck_mtt.models import build_model


def _logits():
    """3 samples, 4 steps, 3 classes; exit steps at threshold 0.9 are known: 1, 2, never."""
    out = np.zeros((3, 4, 3))
    out[0, :, 2] = 6.0  # confident from step 1: softmax(6,0,0)[2] = 0.995
    out[1, 1, 1] = 10.0  # step 1 uniform (1/3); mean at step 2 = (0,5,0): 0.987
    out[2, :, 0] = 1.0  # mean (1,0,0): 0.576 at every step
    out[2, :, 1] = 0.8
    return out, np.array([2, 1, 1])


def test_exit_steps_known():
    out, labels = _logits()
    ex = early_exit(out, 0.9)
    assert ex.exit_step.tolist() == [1, 2, 4]
    assert ex.confident.tolist() == [True, True, False]
    assert ex.predictions.tolist() == [2, 1, 0]
    # a very low threshold exits everyone at step 1; sample 1 is then a tie read as class 0
    assert early_exit(out, 0.3).exit_step.tolist() == [1, 1, 1]
    assert early_exit(out, 0.3).predictions.tolist() == [2, 0, 0]
    # a sharper softmax (temperature < 1) makes sample 2 confident at once
    assert early_exit(out, 0.9, temperature=0.05).exit_step.tolist() == [1, 2, 1]


def test_confidence_and_per_step_accuracy():
    out, labels = _logits()
    conf = confidence(out)
    assert conf[1, 0] == pytest.approx(1 / 3)
    assert conf[1, 1] == pytest.approx(np.exp(5) / (np.exp(5) + 2))
    assert conf[2, 3] == pytest.approx(np.exp(1) / (np.exp(1) + np.exp(0.8) + 1))
    assert accuracy_per_step(out, labels).tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3, 2 / 3])


def test_threshold_sweep_costs():
    out, labels = _logits()
    cost = np.array([[1, 2, 3, 4]] * 3, dtype=float)
    rows = threshold_sweep(out, labels, [0.3, 0.9, 0.999], {"spikes": cost})
    assert [r["mean_t"] for r in rows] == pytest.approx([1, 7 / 3, 4])
    # exit steps 1, 2, 4 -> cumulative costs 1, 3, 10
    assert rows[1]["spikes_per_sample"] == pytest.approx((1 + 3 + 10) / 3)
    assert rows[1]["accuracy"] == pytest.approx(2 / 3) and rows[1]["exited_early"] == pytest.approx(2 / 3)
    assert rows[2]["mean_t"] == 4 and rows[2]["spikes_per_sample"] == 10


def _fan_out(layers: list[nn.Module], shape: tuple[int, ...]) -> torch.Tensor:
    """Independent fan-out: d/dx of the summed output of the path with all-ones weights and
    sum pooling = number of (target neuron) connections of every input neuron."""
    x = torch.zeros((1, *shape), requires_grad=True)
    h = x
    for layer in layers:
        if isinstance(layer, nn.AvgPool2d):
            h = nn.functional.avg_pool2d(h, layer.kernel_size) * layer.kernel_size ** 2
        elif isinstance(layer, nn.Conv2d):
            h = nn.functional.conv2d(h, torch.ones_like(layer.weight), stride=layer.stride, padding=layer.padding)
        elif isinstance(layer, nn.Linear):
            h = nn.functional.linear(h.flatten(1), torch.ones_like(layer.weight))
    h.sum().backward()
    return x.grad[0]


def active_nmnist_model(seed: int = 0, gain: float = 4.0):
    """3C1FC with random weights scaled up so that every layer spikes (thresholds untouched)."""
    torch.manual_seed(seed)
    model = build_model("nmnist_3c1fc")
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.weight.data *= gain
    return model


def _dataset(shape, n, t, p, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [((torch.rand((t, *shape), generator=g) < p).float() * 2, i % 10) for i in range(n)]


def test_stepwise_run_is_causal_and_counts_spikes():
    model = active_nmnist_model()
    data = _dataset((2, 34, 34), n=5, t=6, p=0.05)
    run = run_stepwise(model, data, batch_size=2)
    frames = torch.stack([d[0] for d in data])
    assert run.outputs.shape == (5, 6, 10) and run.spikes.shape == (5, 6, 4) and run.synops.shape == (5, 6, 4)
    with torch.no_grad():
        full = model(frames)
        first3 = model(frames[:, :3])
    assert np.allclose(run.outputs, full.numpy())
    # reading step t of the T_max run == running on the first t frames only (IF neurons are causal)
    assert np.allclose(run.outputs[:, :3], first3.numpy())
    assert (run.spikes[:, :, 1:] > 0).any() and np.allclose(run.spikes[:, :, -1], run.outputs.sum(2))
    # SynOps of layer 0 = input events x fan-out of the first conv
    fan = _fan_out([model.blocks[0][0]], (2, 34, 34))
    assert np.allclose(run.synops[:, :, 0], (frames * fan).flatten(2).sum(2).numpy())
    # SynOps of the Linear = spikes arriving x 10 outputs
    assert np.allclose(run.synops[:, :, 3], run.spikes[:, :, 2] * 10)
    fixed = energy_at_t(model, data, [6, 2])
    assert fixed[0]["spikes_per_sample"] == pytest.approx(run.step_spikes.sum(1).mean(), rel=1e-5)
    assert fixed[0]["synops_per_sample"] == pytest.approx(run.step_synops.sum(1).mean(), rel=1e-5)
    acc_full = float((run.outputs.sum(1).argmax(1) == run.labels).mean())
    assert fixed[0]["accuracy"] == pytest.approx(acc_full)
    assert fixed[1]["t"] == 2 and fixed[1]["spikes_per_sample"] != fixed[0]["spikes_per_sample"]
    report = dynamic_report(run, [0.5, 0.99])
    assert report["per_step"][-1]["synops_per_sample"] == pytest.approx(run.step_synops.sum(1).mean())
    assert "| 0.99 |" in render_dynamic(report)


def test_avgpool_counts_as_sum_pool():
    """Gesture net: input AvgPool2 then a stride-2 conv; SynOps count events, not averages."""
    model = build_model("gesture_4c2fc").eval()
    block = model.blocks[0]
    frames = (torch.rand(1, 2, 2, 128, 128) < 0.01).float()
    with SpikeRecorder(model) as rec, torch.no_grad():
        model(frames)
        _, synops = rec.take(1)
    fan = _fan_out([block[0], block[1]], (2, 128, 128))
    assert float(synops[0].sum()) == pytest.approx(float((frames[0] * fan).sum()), rel=1e-5)
    assert fan.max() == 32 and fan.min() == 8  # 8 channels x (1 or 2) x (1 or 2) target positions


def test_wrong_frame_shape_is_one_line_error():
    from speck_mtt.errors import SpeckMttError

    model = build_model("nmnist_3c1fc")
    with pytest.raises(SpeckMttError, match="do not fit nmnist_3c1fc"):
        run_stepwise(model, _dataset((2, 32, 32), n=1, t=2, p=0.1))


def test_dynamic_cli_on_nmnist_sim(tmp_path):
    """The command end to end: checkpoint -> nmnist-sim test frames -> dynamic.json/md."""
    import json

    import typer
    from typer.testing import CliRunner

    from speck_mtt.checkpoint import make_checkpoint, save_checkpoint
    from speck_mtt.commands.early_exit import early_exit_cmd

    save_checkpoint(make_checkpoint(active_nmnist_model(), {}, recipe={"data": {"dataset": "nmnist-sim"}}, t_max=3),
                    tmp_path / "model.pt")
    app = typer.Typer()
    app.command()(early_exit_cmd)
    res = CliRunner().invoke(app, [str(tmp_path / "model.pt"), "--data-dir", str(tmp_path / "data"), "--samples", "4",
                                   "--thresholds", "0.5,0.9", "--out", str(tmp_path / "out"), "--json"])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "out" / "dynamic.json").read_text())
    assert saved["t_max"] == 3 and saved["n_samples"] == 4 and saved["dataset"] == "nmnist-sim"
    assert [r["threshold"] for r in saved["early_exit"]] == [0.5, 0.9]
    assert [r["t"] for r in saved["fixed_t"]] == [1, 2, 3]
    assert saved["per_step"][-1]["spikes_per_sample"] == pytest.approx(saved["fixed_t"][-1]["spikes_per_sample"])
    bad = CliRunner().invoke(app, [str(tmp_path / "model.pt"), "--thresholds", "0.5,2"])
    assert bad.exit_code != 0 and "each threshold must be in (0, 1]" in str(bad.exception)
