"""Importing speck-mtt, `speck-mtt --help` and an offline deploy never run the PyPI samna stub.

The stub pip-installs the real samna when imported. In a fresh interpreter we make any attempt
to import samna, to execute the stub's code, or to spawn a pip/samna process fail loudly and be
recorded (other processes, such as h5py asking `uname -p`, are only listed), then import every
submodule, run the CLI, deploy a tiny model, and check the record.
"""

import importlib.machinery
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r"""
import importlib, importlib.machinery, json, os, pkgutil, subprocess, sys

out_dir = sys.argv[1]
stub_dir = sys.argv[2]
record = {"spawned": [], "samna_imports": [], "stub_code_ran": [], "other_processes": []}

def installs(argv) -> bool:
    words = [str(a) for a in (argv if isinstance(argv, (list, tuple)) else [argv])]
    return any("pip" in w or "samna" in w for w in words)

def audit(event, args):
    if event in ("subprocess.Popen", "os.system", "os.posix_spawn", "os.exec", "os.spawn"):
        if installs(args[1] if event == "subprocess.Popen" else args):
            record["spawned"].append(f"{event} {args!r}"[:300])
            raise RuntimeError(f"test: pip/samna process spawned ({event})")
        record["other_processes"].append(f"{event} {args!r}"[:200])  # e.g. h5py asking `uname -p`
    if event == "exec" and stub_dir and getattr(args[0], "co_filename", "").startswith(stub_dir):
        record["stub_code_ran"].append(args[0].co_filename)
        raise RuntimeError("test: the PyPI samna stub's code ran")

sys.addaudithook(audit)

class LoudPopen(subprocess.Popen):
    # the stub runs `python -m pip install samna ...` through subprocess.check_call -> Popen
    def __init__(self, args, *rest, **kwargs):
        if installs(args):
            record["spawned"].append(f"subprocess {args!r}"[:300])
            raise RuntimeError(f"test: pip/samna subprocess {args!r}")
        super().__init__(args, *rest, **kwargs)

subprocess.Popen = LoudPopen

class RefuseLoader:
    def create_module(self, spec):
        record["samna_imports"].append(spec.name)
        raise ImportError(f"test: {spec.name} must not be imported")

    def exec_module(self, module):
        raise ImportError("test: samna must not be imported")

class NoSamna:
    # Finding samna is fine (the guard reads the stub's origin); loading it is refused. Only
    # consulted when samna is not in sys.modules (the guard puts a placeholder there).
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] not in ("samna", "samnagui"):
            return None
        found = importlib.machinery.PathFinder.find_spec(name, path)
        if found is None:
            return None
        return importlib.machinery.ModuleSpec(name, RefuseLoader(), origin=found.origin,
                                              is_package=found.submodule_search_locations is not None)

sys.meta_path.insert(0, NoSamna)

import speck_mtt
modules = []
for info in pkgutil.walk_packages(speck_mtt.__path__, "speck_mtt."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
        modules.append(info.name)

from speck_mtt.cli import main

def run_cli(*argv):
    sys.argv = ["speck-mtt", *argv]
    try:
        main()
    except SystemExit as exc:
        return exc.code or 0
    return 0

help_code = run_cli("--help")

import torch
from speck_mtt.checkpoint import make_checkpoint, save_checkpoint
from speck_mtt.models import build_model

ckpt = os.path.join(out_dir, "tiny.pt")
save_checkpoint(make_checkpoint(build_model("nmnist_3c1fc"), {}, dataset="nmnist-sim"), ckpt)
deploy_code = run_cli("deploy", ckpt, "--target", "speck2e", "--out", os.path.join(out_dir, "dep"),
                      "--dataset", "nmnist-sim", "--data-dir", os.path.join(out_dir, "data"), "--samples", "2")

from speck_mtt.chip.samna_guard import _Placeholder, real_samna_installed

samna = sys.modules.get("samna")
print("RESULT " + json.dumps({
    **record, "modules": modules, "help_code": help_code, "deploy_code": deploy_code,
    "samna_module": None if samna is None else type(samna).__name__,
    "samna_is_placeholder_or_absent": samna is None or isinstance(samna, _Placeholder),
    "stub_attributes": sorted(k for k in ("PYPI_SAMNA", "install_real_samna") if samna is not None and k in vars(samna)),
    "real_samna_installed": real_samna_installed(),
    "artifact": os.path.exists(os.path.join(out_dir, "dep", "artifact.pt")),
}))
"""


def _stub_dir() -> str:
    spec = importlib.machinery.PathFinder.find_spec("samna")  # finds on sys.path, ignores sys.modules, no import
    if spec is None or spec.origin is None:
        return ""
    origin = Path(spec.origin)
    return str(origin.parent) if "PYPI_SAMNA" in origin.read_text(errors="replace") else ""


def test_stub_present_in_environment():
    """The check below is only meaningful while the PyPI stub is installed (as in the project venv)."""
    if not _stub_dir():
        pytest.skip("the PyPI samna stub is not installed here (real samna or none)")
    assert "install_real_samna" in (Path(_stub_dir()) / "__init__.py").read_text()


def test_import_help_and_deploy_never_run_samna_stub(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), _stub_dir()], capture_output=True,
                          text=True, timeout=120)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["spawned"] == [] and result["samna_imports"] == [] and result["stub_code_ran"] == []
    assert result["samna_is_placeholder_or_absent"] and result["stub_attributes"] == []
    assert not result["real_samna_installed"] or not _stub_dir()
    assert {"speck_mtt.cli", "speck_mtt.chip.deploy", "speck_mtt.chip.layout", "speck_mtt.chip.fit"} <= set(
        result["modules"])
    assert result["help_code"] == 0 and "deploy" in proc.stdout
    assert result["deploy_code"] == 0 and result["artifact"], proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "fits speck2e" in proc.stdout
