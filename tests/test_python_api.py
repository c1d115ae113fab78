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


TORCHRUN_MEASURE = """import json, sys
import speck_mtt as sm
r = sm.measure_deployed(sys.argv[1], dataset="nmnist-real800", data_dir=sys.argv[2], limit=6, t=[4], workers=1)
print("RESULT " + json.dumps({"rank": r.rank, "n": r.n_samples, "accuracy": r.accuracy, "written": str(r.written),
                              "sd": r.data["torch"][0]["sd"], "ranks": r.data["ranks"]}), flush=True)
"""


@pytest.mark.slow  # torchrun with two ranks, each importing torch
def test_measure_under_torchrun_returns_rank_0s_result_on_every_rank(real800_dir, tmp_path):
    import json

    import torch

    from speck_mtt.checkpoint import make_checkpoint, save_checkpoint
    from speck_mtt.models import build_model

    torch.manual_seed(0)
    model = build_model("nmnist_3c1fc")
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    save_checkpoint(make_checkpoint(model, {}, t_max=4), tmp_path / "ckpt.pt")
    deployed = sm.deploy(tmp_path / "ckpt.pt", tmp_path / "dep", target="sim", samples=0)
    single = sm.measure_deployed(deployed.out, dataset="nmnist-real800", data_dir=real800_dir, limit=6, t=[4],
                                 workers=1)
    script = tmp_path / "measure.py"
    script.write_text(TORCHRUN_MEASURE)
    done = subprocess.run([str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc-per-node", "2",
                           str(script), str(deployed.out), str(real800_dir)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    got = sorted((json.loads(line.split("RESULT ", 1)[1]) for line in done.stdout.splitlines() if "RESULT " in line),
                 key=lambda r: r["rank"])
    assert [r["rank"] for r in got] == [0, 1] and all(r["ranks"] == 2 for r in got)
    expected = {"n": 6, "accuracy": single.accuracy, "written": str(single.written), "sd": single.data["torch"][0]["sd"]}
    assert all({k: r[k] for k in expected} == expected for r in got)
