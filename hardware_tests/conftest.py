"""Hardware-in-the-loop tests: run only with SynSense's real samna and a connected Speck2e devkit.

Every test here is marked `hardware`. Without the real samna (absent, or only the PyPI stub,
which is detected by reading it and never imported) or without a devkit, each one is skipped
with the reason. Environment:
- SPECK_MTT_DEVICE: devkit id (default speck2edevkit:0).
- SPECK_MTT_HW_CHECKPOINT: a trained bias-free nmnist_3c1fc checkpoint for the batch tests
  (default: the hand-wired net below, whose every spike path is known).
- SPECK_MTT_HW_SAMPLES (default 20), SPECK_MTT_HW_SD_BOUND (default 0.10, chip vs simulator and
  chip vs chip; the paper measured 3.92% and 2.81% on N-MNIST).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from speck_mtt.speck.samna_guard import INSTALL_HINT, real_samna_installed

DEVICE = os.environ.get("SPECK_MTT_DEVICE")


def hardware_unavailable() -> str | None:
    """Why the hardware tests cannot run here, or None."""
    if not real_samna_installed():
        return f"the real samna is not installed (none, or only the PyPI stub, which is never imported): {INSTALL_HINT}"
    from speck_mtt.errors import DeviceError
    from speck_mtt.speck.devkit import find_devkit

    try:
        find_devkit(DEVICE)
    except DeviceError as exc:
        return f"no Speck2e devkit: {exc}"
    return None


def pytest_collection_modifyitems(config, items):
    hardware = [item for item in items if "hardware" in item.keywords]
    if not hardware:
        return
    reason = hardware_unavailable()
    if reason:
        for item in hardware:
            item.add_marker(pytest.mark.skip(reason=reason))


def wired_nmnist(target_class: int = 3):
    """3C1FC where an input event (x, y, p) takes one path: channel 0 of every layer at the mapped
    position, then output `target_class`. Each layer's only weight reaches its threshold (the 4
    after an AvgPool becomes 1 once sinabs folds the 1/4 in), so every event makes one spike per
    layer, except at the stride-2 conv where only events with (y // 4, x // 4) both even go on
    (its centre tap): such an event gives exactly one output spike, at `target_class`."""
    from speck_mtt.models import build_model

    model = build_model("nmnist_3c1fc")
    convs = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        for m in convs:
            m.weight.zero_()
        convs[0].weight[0, :, 1, 1] = 1.0
        convs[1].weight[0, 0, 1, 1] = 4.0
        convs[2].weight[0, 0, 1, 1] = 4.0
        convs[3].weight[target_class, :16] = 1.0  # flatten indices 0..15 = channel 0 of the 4x4 map
    return model


@pytest.fixture(scope="session")
def deploy_dir(tmp_path_factory) -> Path:
    """A speck2e deploy directory (artifact.pt + model.pt) of the checkpoint under test."""
    from speck_mtt.checkpoint import make_checkpoint, save_checkpoint
    from speck_mtt.speck.deploy import deploy

    root = tmp_path_factory.mktemp("hw")
    checkpoint = os.environ.get("SPECK_MTT_HW_CHECKPOINT")
    if checkpoint is None:
        checkpoint = root / "wired.pt"
        save_checkpoint(make_checkpoint(wired_nmnist(), {}, dataset="nmnist-sim"), checkpoint)
    out = root / "deploy"
    deploy(Path(checkpoint), "speck2e", out, samples=0)
    return out
