"""CUDA paths: the same training step and evaluation on the GPU as on the CPU (skipped without CUDA)."""

import pytest
import torch

from speck_mtt.evaluate import evaluate
from speck_mtt.models import build_model
from speck_mtt.mtt.config import ConfigSampler
from speck_mtt.mtt.losses import make_loss
from speck_mtt.training.loop import train_epoch, trainable_parameters

from test_train import tiny_frames

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _one_mtt_step(device: str, bn: bool, loss: str) -> tuple[list[torch.Tensor], torch.nn.Module]:
    """Gradients of one MTT iteration (3 draws) of 3C1FC (no BN) or 4C2FC (BN, 128x128 input)."""
    torch.manual_seed(0)
    if bn:
        model = build_model("gesture_4c2fc", bn=True).to(device)
        x, y = torch.poisson(torch.full((4, 3, 2, 128, 128), 0.05)), torch.arange(4)
    else:
        model = build_model("nmnist_3c1fc", bn=False).to(device)
        x, y = tiny_frames(8).tensors
    opt = torch.optim.SGD(trainable_parameters(model), lr=0.0)
    train_epoch(model, [(x, y)], ConfigSampler("mtt", model.n_stages(), 1, 3, 3, draws=3, seed=1),
                make_loss(loss, 1e-3), opt, torch.device(device))
    return [p.grad.detach().cpu() for p in trainable_parameters(model)], model


@pytest.mark.parametrize("bn,loss", [(False, "ce"), (True, "tet")])
def test_mtt_step_on_cuda_matches_cpu(bn, loss, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # TF32 convolutions round to 10 bits
    cpu, _ = _one_mtt_step("cpu", bn, loss)
    gpu, model = _one_mtt_step("cuda", bn, loss)
    assert all(p.is_cuda for p in model.parameters())
    assert any(g.abs().sum() > 0 for g in cpu)
    # Floating-point sums differ between devices and a spike threshold can amplify that locally:
    # compare each gradient tensor as a whole, not element by element.
    for a, b in zip(cpu, gpu):
        assert torch.linalg.vector_norm(a - b) <= 1e-2 * torch.linalg.vector_norm(a)


def test_evaluate_on_cuda_matches_cpu():
    torch.manual_seed(0)
    model = build_model("nmnist_3c1fc", bn=False)
    data = tiny_frames(32, t=4)
    loader = torch.utils.data.DataLoader(data, batch_size=16)
    cpu = evaluate(model.eval(), loader, [1, 2, 4], torch.device("cpu"))
    gpu = evaluate(model.to("cuda").eval(), loader, [1, 2, 4], torch.device("cuda"))
    assert cpu["accuracy"] == gpu["accuracy"]
