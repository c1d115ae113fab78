"""The training loop and a whole run on tiny in-memory frames (no dataset files needed)."""

import json

import pytest
import torch
from torch.utils.data import TensorDataset

from speck_mtt.checkpoint import load_checkpoint, model_from_checkpoint
from speck_mtt.errors import SpeckMttError
from speck_mtt.models import build_model
from speck_mtt.mtt.config import ConfigSampler
from speck_mtt.mtt.losses import mean_output_ce
from speck_mtt.training.recipe import load_recipe
from speck_mtt.training.bn import bn_modules
from speck_mtt.training.loop import NonFiniteLoss, fixed_t, run, train_epoch, trainable_parameters

torch.set_num_threads(1)  # tiny tensors: one thread is faster, and the CI machine is shared


def tiny_frames(n, t=3, seed=0, nan=False):
    """(N, T, 2, 34, 34) event counts whose class shows in where the events fall."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = torch.poisson(torch.full((n, t, 2, 34, 34), 0.05), generator=g)
    for i, c in enumerate(y.tolist()):
        x[i, :, :, 3 * c:3 * c + 4, 4:30] += 1.0
    if nan:
        x[0, 0, 0, 0, 0] = float("nan")
    return TensorDataset(x, y)


def crash_after(n):
    """An epoch callback that simulates a crash once epoch n's last.pt is written."""
    def on_epoch(epoch):
        if epoch == n:
            raise RuntimeError(f"simulated crash after epoch {epoch}")
    return on_epoch


def tiny_recipe(**train):
    rec = load_recipe("nmnist", overrides={
        "data": {"batch_size": 4}, "eval": {"batch_size": 16},
        "train": {"t_max": 3, "epochs": 2, "calib_batches": 1, "lr": 5e-3} | train,
        "bias_removal": {"epochs": 1, "t_max": 0}})
    return rec


def test_gradients_of_the_draws_are_summed():
    torch.manual_seed(0)
    model = build_model("nmnist_3c1fc", bn=False)
    x, y = tiny_frames(4).tensors
    opt = torch.optim.SGD(trainable_parameters(model), lr=0.0)  # a step that changes nothing: grads stay readable
    train_epoch(model, [(x, y)], ConfigSampler("mtt", 4, 1, 3, 3, draws=3, seed=5), mean_output_ce, opt, "cpu")
    params = trainable_parameters(model)
    assert len(params) == 4  # the four weight tensors; thresholds are not trained
    summed = [p.grad.clone() for p in params]
    expected = [torch.zeros_like(p) for p in params]
    for config in ConfigSampler("mtt", 4, 1, 3, 3, draws=3, seed=5).iteration():
        model.zero_grad()
        mean_output_ce(model(x, config), y).backward()
        expected = [e + p.grad for e, p in zip(expected, params)]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(summed, expected))
    assert any(a.abs().sum() > 0 for a in summed)


def _weights(path):
    return load_checkpoint(path)["model"]


def test_resume_after_crash_equals_uninterrupted_run(tmp_path):
    data = (tiny_frames(8), tiny_frames(4, seed=1))
    full = run(tiny_recipe(), tmp_path / "full", datasets=data, progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tiny_recipe(), tmp_path / "cut", datasets=data, progress=False, on_epoch=crash_after(1))
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 1 and not (tmp_path / "cut" / "model.pt").exists()
    resumed = run(tiny_recipe(), tmp_path / "cut", datasets=data, progress=False, resume=True)
    a, b = _weights(tmp_path / "full" / "model.pt"), _weights(tmp_path / "cut" / "model.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["eval"]["accuracy"] == full["eval"]["accuracy"]
    metrics = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert (tmp_path / "full" / "eval.csv").is_file() and (tmp_path / "full" / "eval.png").is_file()
    ck = load_checkpoint(tmp_path / "full" / "model.pt")
    assert (ck["method"], ck["t_min"], ck["t_max"], ck["phase"], ck["epoch"]) == ("mtt", 1, 3, "base", 2)
    assert ck["eval"]["t"] == [1, 2, 3]


def test_existing_run_is_never_overwritten(tmp_path):
    data = (tiny_frames(4), tiny_frames(4, seed=1))
    rec = tiny_recipe(epochs=1)
    run(rec, tmp_path, datasets=data, progress=False)
    before = (tmp_path / "model.pt").read_bytes()
    with pytest.raises(SpeckMttError, match="already holds a run"):
        run(tiny_recipe(epochs=1), tmp_path, datasets=data, progress=False)
    assert (tmp_path / "model.pt").read_bytes() == before
    with pytest.raises(SpeckMttError, match="another recipe"):
        run(tiny_recipe(epochs=1, lr=1e-2), tmp_path, datasets=data, progress=False, resume=True)


def test_nan_loss_is_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path):
    good, test = tiny_frames(4), tiny_frames(4, seed=1)
    with pytest.raises(RuntimeError):
        run(tiny_recipe(epochs=2), tmp_path, datasets=(good, test), progress=False, on_epoch=crash_after(1))
    last = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(NonFiniteLoss, match=r"non-finite loss .* epoch 2.*last.pt keeps the finite weights of epoch 1"):
        run(tiny_recipe(epochs=2), tmp_path, datasets=(tiny_frames(4, nan=True), test), progress=False, resume=True)
    assert (tmp_path / "last.pt").read_bytes() == last and not (tmp_path / "model.pt").exists()


def test_bias_removal_phase_gives_a_bias_free_bn_free_model(tmp_path):
    data = (tiny_frames(8), tiny_frames(4, seed=1))
    run(tiny_recipe(epochs=1), tmp_path / "base", datasets=data, progress=False)
    summary = run(tiny_recipe(epochs=1), tmp_path / "br", phase="bias-removal",
                  from_ckpt=tmp_path / "base" / "model.pt", datasets=data, progress=False)
    ck = load_checkpoint(tmp_path / "br" / "model.pt")
    assert ck["arch_kwargs"]["bn"] is False and ck["phase"] == "bias-removal"
    model = model_from_checkpoint(ck)
    assert not bn_modules(model) and not [n for n, _ in model.named_parameters() if "bias" in n]
    assert summary["eval_absorbed"]["t"] == [1, 3] and len(summary["eval"]["t"]) == 3
    with pytest.raises(SpeckMttError, match="needs --from"):
        run(tiny_recipe(epochs=1), tmp_path / "x", phase="bias-removal", datasets=data, progress=False)


@pytest.mark.parametrize("method", ["sdt", "nmt", "slt"])
def test_baseline_methods_and_tet_run(tmp_path, method):
    data = (tiny_frames(4), tiny_frames(4, seed=1))
    s = run(tiny_recipe(epochs=1, method=method, loss="tet", tit_t=0), tmp_path, datasets=data, progress=False)
    assert s["method"] == method and len(s["eval"]["accuracy"]) == 3


def test_tit_schedule_trains_small_t_then_the_target():
    rec = load_recipe("nmnist", overrides={"train": {"method": "sdt", "epochs": 5, "tit_t": 2, "tit_epochs": 2}})
    assert [fixed_t(rec, e, 5) for e in range(5)] == [2, 2, 2, 10, 10]
    assert [fixed_t(load_recipe("nmnist", overrides={"train": {"t_sdt": 4}}), e, 5) for e in range(2)] == [4, 4]


def test_non_finite_weights_stop_training_before_a_checkpoint_holds_them():
    """lr=inf passes no recipe any more, but an optimizer step can still overflow: it is caught at once."""
    model = build_model("nmnist_3c1fc", bn=False)
    x, y = tiny_frames(4).tensors
    opt = torch.optim.SGD(trainable_parameters(model), lr=float("inf"))
    with pytest.raises(NonFiniteLoss, match="non-finite weights .* after epoch 1, batch 1"):
        train_epoch(model, [(x, y)], ConfigSampler("mtt", 4, 1, 3, 3, draws=1, seed=0), mean_output_ce, opt, "cpu")


@pytest.mark.parametrize("key, value", [("train.lr", "nan"), ("train.lr", "inf"), ("bias_removal.lr", "-inf"),
                                        ("train.weight_decay", "-1"), ("train.calib_batches", "-1"),
                                        ("train.tet_lambda", "nan"), ("data.limit_train", "-5")])
def test_recipe_refuses_non_finite_and_negative_values(key, value):
    from speck_mtt.training.recipe import parse_set

    with pytest.raises(SpeckMttError, match=key.replace(".", r"\.")):
        load_recipe("nmnist", overrides=parse_set([f"{key}={value}"]))
