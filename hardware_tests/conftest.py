"""Hardware-in-the-loop tests: run only with SynSense's real samna and a connected Speck2e devkit.

Every test here is marked `hardware`. Without the real samna (absent, or only the PyPI stub,
which is detected by reading it and never imported) or without a devkit, each one is skipped
with the reason. Environment:
- SPECK_MTT_DEVICE: devkit id (default speck2edevkit:0).
- SPECK_MTT_HW_CHECKPOINT: a trained bias-free nmnist_3c1fc checkpoint for the batch tests
  (default: the hand-wired 3C1FC of wired.py, whose every spike path is known).
- SPECK_MTT_HW_SAMPLES (default 20), SPECK_MTT_HW_SD_BOUND (default 0.10, chip vs simulator and
  chip vs chip; the paper measured 3.92% and 2.81% on N-MNIST).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from wired import deploy_model, wired_gesture, wired_nmnist, wired_rule

from speck_mtt.chip.samna_guard import INSTALL_HINT, real_samna_installed

DEVICE = os.environ.get("SPECK_MTT_DEVICE")


def hardware_unavailable() -> str | None:
    """Why the hardware tests cannot run here, or None."""
    if not real_samna_installed():
        return f"the real samna is not installed (none, or only the PyPI stub, which is never imported): {INSTALL_HINT}"
    from speck_mtt.errors import DeviceError
    from speck_mtt.chip.devkit import find_devkit

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


@pytest.fixture(scope="session")
def deploy_dir(tmp_path_factory) -> Path:
    """The checkpoint under test (SPECK_MTT_HW_CHECKPOINT), else the wired 3C1FC."""
    from speck_mtt.chip.deploy import deploy

    root = tmp_path_factory.mktemp("hw")
    checkpoint = os.environ.get("SPECK_MTT_HW_CHECKPOINT")
    if checkpoint is None:
        return deploy_model(root, *wired_nmnist())
    deploy(Path(checkpoint), "speck2e", root / "deploy", samples=0)
    return root / "deploy"


@pytest.fixture(scope="session")
def wired_dir(tmp_path_factory) -> Path:
    return deploy_model(tmp_path_factory.mktemp("wired"), *wired_nmnist())


@pytest.fixture(scope="session")
def half_off_dir(tmp_path_factory) -> Path:
    return deploy_model(tmp_path_factory.mktemp("half"), *wired_nmnist(off_weight=0.5))


@pytest.fixture(scope="session")
def gesture_dir(tmp_path_factory) -> Path:
    return deploy_model(tmp_path_factory.mktemp("gesture"), *wired_gesture())


@pytest.fixture(scope="session", params=[-8.0, -1.0], ids=["floor-8", "floor-1"])
def rule_dir(request, tmp_path_factory) -> Path:
    """wired_rule deployed with `--floor -8` (what it was trained with) and `--floor -1`."""
    return deploy_model(tmp_path_factory.mktemp("rule"), *wired_rule(), floor=request.param)
