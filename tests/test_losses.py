"""Losses against hand computations."""

import math

import pytest
import torch

from speck_mtt.errors import SpeckMttError
from speck_mtt.mtt.losses import make_loss, mean_output_ce, tet_loss


def _ce(logits, y):
    return -logits[y] + math.log(sum(math.exp(v) for v in logits))


def test_mean_output_ce_by_hand():
    out = torch.tensor([[[1.0, 0.0, 2.0], [3.0, 1.0, 0.0]]])  # B=1, T=2, C=3
    mean = [2.0, 0.5, 1.0]
    assert mean_output_ce(out, torch.tensor([1])).item() == pytest.approx(_ce(mean, 1), rel=1e-6)


def test_tet_by_hand():
    torch.manual_seed(0)
    out, y = torch.randn(2, 3, 4), torch.tensor([1, 3])
    lam, theta = 0.2, 1.0
    ce = sum(_ce(out[b, t].tolist(), int(y[b])) for b in range(2) for t in range(3)) / 6
    mse = sum((out[b, t, c].item() - theta) ** 2 for b in range(2) for t in range(3) for c in range(4)) / 24
    expected = (1 - lam) * ce + lam * mse  # mean over t of per-step MSE (each a mean over B and C)
    assert tet_loss(out, y, lam=lam, theta=theta).item() == pytest.approx(expected, rel=1e-5)
    assert tet_loss(out, y, lam=0.0).item() == pytest.approx(ce, rel=1e-5)


def test_make_loss():
    out, y = torch.randn(2, 3, 4), torch.tensor([0, 1])
    assert make_loss("tet", 0.5)(out, y).item() == pytest.approx(tet_loss(out, y, 0.5).item())
    assert make_loss("ce")(out, y).item() == pytest.approx(mean_output_ce(out, y).item())
    with pytest.raises(SpeckMttError):
        make_loss("mse")
