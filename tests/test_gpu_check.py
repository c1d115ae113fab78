"""bench/gpu_check.sh (the CUDA run of VGGSNN on cifar10dvs-sim) without a GPU: its syntax, its
usage line and its refusal on a machine whose torch sees no CUDA device (`--cpu-tiny` runs the
same steps on the CPU: docs/cifar10dvs-sim.md)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.sh"
SPECK = str(Path(sys.executable).with_name("speck-mtt"))


def test_gpu_check_parses_and_names_its_usage(tmp_path):
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    run = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "usage: bench/gpu_check.sh OUT" in run.stderr
    run = subprocess.run(["bash", str(SCRIPT), str(tmp_path), "--fast"], capture_output=True, text=True)
    assert run.returncode == 2 and "usage" in run.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the script would train")
def test_gpu_check_refuses_without_cuda_in_one_line(tmp_path):
    env = {**os.environ, "SPECK": SPECK, "PY": sys.executable}
    run = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out")], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2 and "no CUDA device" in run.stderr and "--cpu-tiny" in run.stderr
    assert not (tmp_path / "out" / "sdt").exists()
