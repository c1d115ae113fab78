"""`speck-mtt measure --progress`: a bar with the remaining time on stderr; none by default when
stderr is not a terminal (logs and tests stay clean)."""

import subprocess
import sys
from pathlib import Path

import torch

from speck_mtt.checkpoint import make_checkpoint, save_checkpoint
from speck_mtt.models import build_model
from speck_mtt.chip.deploy import deploy

SPECK = str(Path(sys.executable).with_name("speck-mtt"))


def test_progress_bar_only_when_asked(tmp_path):
    torch.manual_seed(0)
    save_checkpoint(make_checkpoint(build_model("nmnist_3c1fc"), {"floor": -8.0}), tmp_path / "ckpt.pt")
    deploy(tmp_path / "ckpt.pt", "sim", tmp_path / "dep", samples=0)
    base = [SPECK, "measure", str(tmp_path / "dep"), "--dataset", "nmnist-sim", "--data-dir", str(tmp_path / "data"),
            "--limit", "6", "--workers", "1"]
    shown = subprocess.run(base + ["--progress"], capture_output=True, text=True, check=True)
    assert "simulating" in shown.stderr and "6/6" in shown.stderr and "left" in shown.stderr
    quiet = subprocess.run(base + ["--out", str(tmp_path / "quiet.json")], capture_output=True, text=True, check=True)
    assert "simulating" not in quiet.stderr and "accuracy" in quiet.stdout
