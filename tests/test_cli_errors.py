"""Bad invocations of the installed `speck-mtt` console script: one line on stderr, exit 2, no
traceback (typer's bundled click included); an unexpected error is one line with a --debug hint.

Every subprocess pays the CLI's import (torch, sinabs: 2-3 s), so the table runs once, two at a
time, in a module fixture; each row is then its own test. Failures raised inside commands go
through the same main() in-process.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from speck_mtt.cli import main
from speck_mtt.files import output_lock

CONSOLE = Path(sys.executable).with_name("speck-mtt")

# name: (arguments, text the one stderr line must hold); {file}/{busy}/{tmp} are filled in below
CASES = {
    "missing argument": (["deploy"], "speck-mtt deploy: Missing argument 'checkpoint'"),
    "unknown option": (["train", "nmnist", "--bogus"], "No such option: --bogus"),
    "--limit 0": (["measure", "{tmp}", "--limit", "0"], "Invalid value for '--limit'"),
    "--t 0": (["measure", "{tmp}", "--t", "0"], "Invalid value for '--t'"),
    "--workers 0": (["measure", "{tmp}", "--workers", "0"], "Invalid value for '--workers'"),
    "--out is an existing file": (["train", "nmnist", "--out", "{file}"], "{file} is a file, not a folder"),
    "--out in use": (["train", "nmnist", "--quick", "--out", "{busy}"], "{busy} is in use by"),
    # a mistyped --data-dir is never an empty one, and an explicit one never falls back to a stand-in
    "--data-dir a file (data info)": (["data", "info", "nmnist", "--data-dir", "{file}"],
                                      "error: --data-dir {file} is a file, not a folder"),
    "--data-dir a file (train)": (["train", "nmnist", "--dataset", "nmnist-sim", "--data-dir", "{file}", "--out",
                                   "{tmp}/t1"], "error: --data-dir {file} is a file, not a folder"),
    "--data-dir a file (measure)": (["measure", "{dep}", "--dataset", "nmnist-sim", "--data-dir", "{file}"],
                                    "error: --data-dir {file} is a file, not a folder"),
    "--data-dir without the files (data info)": (["data", "info", "nmnist", "--data-dir", "{tmp}"],
                                                 "error: nmnist files not found under --data-dir {tmp}: expected "
                                                 "{tmp}/NMNIST/{{Train,Test}}/<digit 0-9>/<id>.bin; put them there, or "
                                                 "use the built-in offline stand-in nmnist-sim"),
    "--data-dir without the files (train)": (["train", "nmnist", "--quick", "--data-dir", "{tmp}", "--out", "{tmp}/t2"],
                                             "error: nmnist files not found under --data-dir {tmp}"),
    "--data-dir without the files (measure)": (["measure", "{dep}", "--data-dir", "{tmp}"],
                                               "error: nmnist files not found under --data-dir {tmp}"),
    # the value that is wrong, and the fix, before any data is generated
    "--from missing": (["train", "nmnist", "--dataset", "nmnist-sim", "--phase", "bias-removal", "--from",
                        "{tmp}/none.pt", "--out", "{tmp}/b"],
                       "error: --from {tmp}/none.pt: no such file; pass the model.pt of a base run"),
    "--from not a checkpoint": (["train", "nmnist", "--dataset", "nmnist-sim", "--phase", "bias-removal", "--from",
                                 "{file}", "--out", "{tmp}/b"],
                                "error: --from {file}: cannot be read as a speck-mtt checkpoint: not a torch "
                                "checkpoint: a text file"),
    "--compare not a recording": (["measure", "{dep}", "--dataset", "nmnist-sim", "--data-dir", "{tmp}/gen",
                                   "--compare", "{file}"], "error: --compare {file}: not a speck-mtt recording (not "
                                                           "an .npz archive); pass a .npz written by `speck-mtt "
                                                           "measure --record`"),
    "export --out a folder": (["export", "{dep}/model.pt", "--out", "{tmp}"],
                              "error: {tmp}: cannot be written (Is a directory); nothing was changed"),
    "--compare a checkpoint": (["measure", "{dep}", "--dataset", "nmnist-sim", "--data-dir", "{tmp}/gen",
                                "--compare", "{dep}/model.pt"], "error: --compare {dep}/model.pt: not a speck-mtt "
                                                                "recording (an .npz without counts, labels, sample_ids)"),
}

def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    fill = {"tmp": str(tmp), "file": str(tmp / "a-file"), "busy": str(tmp / "busy"), "dep": str(tmp / "dep")}
    Path(fill["file"]).write_text("not a folder\n")
    from speck_mtt.checkpoint import make_checkpoint, save_checkpoint
    from speck_mtt.chip.deploy import deploy
    from speck_mtt.models import build_model

    save_checkpoint(make_checkpoint(build_model("nmnist_3c1fc"), {"floor": -8.0}), tmp / "ckpt.pt")
    deploy(tmp / "ckpt.pt", "sim", tmp / "dep", samples=0)
    jobs = {name: [str(CONSOLE), *(a.format(**fill) for a in args)] for name, (args, _) in CASES.items()}
    with output_lock(fill["busy"]), ThreadPoolExecutor(2) as pool:  # this test process holds `busy`
        done = dict(zip(jobs, pool.map(_run, jobs.values())))
    return done, fill


@pytest.mark.parametrize("name", CASES)
def test_bad_invocation_is_one_line_exit_2(results, name):
    done, fill = results
    r = done[name]
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert CASES[name][1].format(**fill) in lines[0]
    assert lines[0].startswith("error: ")
    assert not Path(fill["tmp"], "gen").exists()  # refused before any stand-in was generated


def test_the_lock_names_its_holder(results):
    import os

    done, _ = results
    assert f"pid {os.getpid()}" in done["--out in use"].stderr


@pytest.fixture
def buggy_command():
    """A command that fails the way a bug does (an exception speck-mtt does not expect)."""
    from speck_mtt.cli import app

    @app.command("boom")
    def boom() -> None:
        raise ValueError("a bug")

    yield
    app.registered_commands.pop()


def test_unexpected_error_is_one_line_with_a_debug_hint(buggy_command, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["speck-mtt", "boom"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: unexpected ValueError: a bug (a bug in speck-mtt? rerun as `speck-mtt --debug ...` for the traceback)"]
    monkeypatch.setattr(sys, "argv", ["speck-mtt", "--debug", "boom"])
    with pytest.raises(ValueError, match="a bug"):  # the traceback is Python's own
        main()


@pytest.mark.parametrize("args, expected", [
    (["train", "nmnist", "--set", "train.lr=nan"], "error: recipe key train.lr must be a finite float, got nan"),
    (["train", "nmnist", "--set", "train.foo=1"], "error: override: unknown recipe key train.foo"),
    (["deploy", "{text}", "--out", "{tmp}/d"], "error: {text}: cannot be read as a speck-mtt checkpoint: "
                                                "not a torch checkpoint: a text file"),
])
def test_expected_failures_through_main(tmp_path, monkeypatch, capsys, args, expected):
    """The same entry point in-process (no interpreter start) for failures raised inside commands."""
    text = tmp_path / "model.pt"
    text.write_text("hello, I am not a checkpoint\n")
    fill = {"tmp": str(tmp_path), "text": str(text)}
    monkeypatch.setattr(sys, "argv", ["speck-mtt", *(a.format(**fill) for a in args)])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.splitlines() == [err.strip()] and err.startswith(expected.format(**fill))
    assert not (tmp_path / "d").exists()
