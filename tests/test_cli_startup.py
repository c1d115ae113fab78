"""The command line answers without loading its libraries: `speck-mtt --help`, --version, a
command's --help and any usage error import neither torch nor sinabs (nor tonic, numba, nir,
scipy, matplotlib); its conventions: --version, shell completion, $SPECK_MTT_DATA, choices for
every closed set, --debug tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from speck_mtt import __version__, choices
from speck_mtt.cli import main

CONSOLE = Path(sys.executable).with_name("speck-mtt")
HEAVY = ("torch", "sinabs", "tonic", "numba", "nir", "scipy", "matplotlib", "samna")

# The console script's own main(), then what it left in sys.modules (written after it exits).
PROBE = """import atexit, json, sys
atexit.register(lambda: print("\\nMODULES " + json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {heavy})),
                              file=sys.stderr))
sys.argv = ["speck-mtt", *{args}]
from speck_mtt.cli import main
main()
"""

STARTS = {
    "--help": ["--help"],
    "--version": ["--version"],
    "a command's --help": ["train", "--help"],
    "a group's --help": ["data", "info", "--help"],
    "missing argument": ["deploy"],
    "bad choice": ["train", "nmnist", "--method", "foo"],
}


@pytest.mark.parametrize("name", STARTS)
def test_starts_without_heavy_imports(name):
    args = STARTS[name]
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=set(HEAVY), args=args)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode in (0, 2), done.stderr
    loaded = json.loads(done.stderr.rsplit("MODULES ", 1)[1])
    assert loaded == [], f"speck-mtt {' '.join(args)} imported {loaded}"


def _console(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CONSOLE), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def test_version_is_the_package_version():
    from importlib.metadata import version

    done = _console("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"speck-mtt {__version__}"
    assert version("speck-mtt") == __version__


@pytest.mark.parametrize("args, bad, valid", [
    (["train", "nmnist", "--method", "foo"], "foo", choices.Method),
    (["train", "nmnist", "--loss", "mse"], "mse", choices.Loss),
    (["train", "nmnist", "--phase", "finetune"], "finetune", choices.Phase),
    (["search", "x.pt", "--energy", "joules"], "joules", choices.Energy),
    (["search", "x.pt", "--rates", "guess"], "guess", choices.Rates),
    (["measure", "x", "--dataset", "mnist"], "mnist", choices.Dataset),
    (["data", "info", "mnist"], "mnist", choices.Dataset),
])
def test_a_bad_choice_is_one_line_naming_it_and_the_choices(args, bad, valid, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["speck-mtt", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.splitlines() == [err.strip()], err
    assert err.startswith("error: ") and repr(bad) in err and all(repr(c.value) in err for c in valid), err


def test_completion_is_on():
    shown = _console("--show-completion", "bash")
    assert shown.returncode == 0 and "_SPECK_MTT_COMPLETE" in shown.stdout, shown.stderr
    done = _console(_SPECK_MTT_COMPLETE="complete_bash", COMP_WORDS="speck-mtt tr", COMP_CWORD="1")
    assert done.stdout.split() == ["train"], done.stdout + done.stderr
    done = _console(_SPECK_MTT_COMPLETE="complete_bash", COMP_WORDS="speck-mtt train nmnist --method m",
                    COMP_CWORD="4")
    assert done.stdout.split() == ["mtt"], done.stdout + done.stderr


def _leaf_commands():
    import typer

    from speck_mtt.cli import app

    def walk(cmd):
        subs = getattr(cmd, "commands", None)
        return [c for sub in subs.values() for c in walk(sub)] if subs else [cmd]

    return walk(typer.main.get_command(app))


def test_every_data_dir_reads_the_environment():
    found = [p for cmd in _leaf_commands() for p in cmd.params if "--data-dir" in p.opts]
    assert len(found) >= 6 and all(p.envvar == "SPECK_MTT_DATA" for p in found)


def test_the_dataset_choices_are_the_registry():
    from speck_mtt.data.registry import DATASETS

    assert choices.values(choices.Dataset) == tuple(DATASETS)


@pytest.fixture
def failing_command():
    """A command that fails with an error the CLI turns into one line (an OSError)."""
    from speck_mtt.cli import app

    @app.command("fail")
    def fail() -> None:
        raise PermissionError(13, "Permission denied", "/nowhere/out")

    yield
    app.registered_commands.pop()


def test_debug_shows_the_traceback_of_any_error(failing_command, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["speck-mtt", "fail"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2 and capsys.readouterr().err == "error: /nowhere/out: Permission denied\n"
    monkeypatch.setattr(sys, "argv", ["speck-mtt", "--debug", "fail"])
    with pytest.raises(PermissionError):
        main()
