"""The Python API: docs/python.md's example runs as written (and prints only its own lines), the
functions return what the commands' --json print, and `import speck_mtt` does not load torch."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import speck_mtt as sm

DOC = Path(__file__).resolve().parents[1] / "docs" / "python.md"


def example() -> str:
    block = re.search(r"## Example\n.*?```python\n(.*?)```", DOC.read_text(), re.S)
    assert block, f"{DOC} has no python block under ## Example"
    return block.group(1)


def test_the_documented_example_runs_as_written(tmp_path):
    done = subprocess.run([sys.executable, "-c", example()], cwd=tmp_path, capture_output=True, text=True,
                          timeout=900, env={"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
                                            "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 3, done.stdout  # the example's prints, nothing from the library
    assert lines[0].startswith("torch accuracy at T=10: ") and lines[1].startswith("cores [")
    assert re.fullmatch(r"simulator \d+\.\d% on 16 samples, spike difference \d+\.\d%", lines[2]), lines[2]
    assert "epoch 1/1" not in done.stderr  # training messages only when asked (progress=)
    runs = tmp_path / "runs" / "nb"
    assert (runs / "bias-free" / "model.pt").is_file() and (runs / "deploy" / "measure-sim.json").is_file()
    assert (runs / "model.nir").is_file()


def test_import_is_cheap_and_exposes_the_api():
    probe = "import sys, speck_mtt as sm; sm.train; sm.Trained; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
    assert set(sm.__all__) <= set(dir(sm)) and callable(sm.measure_deployed)
    with pytest.raises(AttributeError):
        sm.no_such_function


def test_recipe_overrides_as_list_or_dict_agree():
    a = sm.load_recipe("nmnist", quick=True, overrides=["train.epochs=2", "data.limit_test=8"])
    b = sm.load_recipe("nmnist", quick=True, overrides={"train": {"epochs": 2}, "data": {"limit_test": 8}})
    assert a == b and a.train.epochs == 2 and a.quick


def test_train_takes_the_folder_lock_and_refuses_a_busy_folder(tmp_path):
    from speck_mtt.errors import SpeckMttError
    from speck_mtt.files import output_lock

    with output_lock(tmp_path / "busy"), pytest.raises(SpeckMttError, match="is in use by"):
        sm.train("nmnist", quick=True, out=tmp_path / "busy")
