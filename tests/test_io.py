"""Files on disk: the output-folder lock, atomic writes (mode, stale temporaries), strict JSON and
checkpoint-loading errors that name the file and what is wrong with it."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import pytest
import torch

from speck_mtt.checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
from speck_mtt.errors import SpeckMttError
from speck_mtt.files import LOCK_NAME, atomic_write, dumps_json, output_lock, save_json, save_text, temp_name
from speck_mtt.models import build_model


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_is_exclusive_names_the_holder_and_is_released(tmp_path):
    out = tmp_path / "run"
    with output_lock(out):
        lock = (out / LOCK_NAME).read_text()
        assert lock.startswith(f"{os.getpid()} ")
        with pytest.raises(SpeckMttError, match=rf"{out} is in use by .*pid {os.getpid()}.*pass another --out"):
            with output_lock(out):
                pass
        (out / "result").write_text("x")
    assert not (out / LOCK_NAME).exists() and (out / "result").is_file()


def test_stale_lock_of_a_dead_process_is_reported_and_replaced(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    import socket

    pid = dead_pid()
    (out / LOCK_NAME).write_text(f"{pid} {socket.gethostname()} 2026-01-01T00:00:00 speck-mtt train nmnist\n")
    with output_lock(out):
        assert (out / LOCK_NAME).read_text().startswith(f"{os.getpid()} ")
    assert f"removing the stale lock of `speck-mtt train nmnist` (pid {pid}" in capsys.readouterr().err
    assert not (out / LOCK_NAME).exists()


def test_lock_of_a_killed_run_is_stale(tmp_path):
    """kill -9 skips every cleanup: the next run must still get the folder (the kernel frees the flock)."""
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom speck_mtt.files import output_lock\n"
                               "with output_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n",
                               str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SpeckMttError, match=f"pid {holder.pid}"):
            with output_lock(out):
                pass
        (out / LOCK_NAME).unlink()  # the kernel's flock decides, not the holder line
        with pytest.raises(SpeckMttError, match=f"{out} is in use by another run"):
            with output_lock(out):
                pass
    finally:
        holder.kill()
        holder.wait()
    with output_lock(out):
        pass


def test_lock_refuses_a_file_and_leaves_no_empty_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(SpeckMttError, match="is a file, not a folder"):
        with output_lock(tmp_path / "f"):
            pass
    with pytest.raises(RuntimeError):
        with output_lock(tmp_path / "new"):
            raise RuntimeError("failed before writing anything")
    assert not (tmp_path / "new").exists()


def test_atomic_writes_keep_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        save_text("x", tmp_path / "a.txt")
        save_checkpoint({"x": torch.zeros(1)}, tmp_path / "a.pt")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "a.pt").stat().st_mode & 0o777 == 0o640


def test_temporaries_of_dead_writers_are_removed_by_the_next_run(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    stale = out / f".last.pt.{dead_pid()}.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    stale_dir = temp_name(out / "cache").with_name(f".cache.{dead_pid()}.build.tmp")
    stale_dir.mkdir()
    live = out / f".last.pt.{os.getpid()}.def456.tmp"  # a writer that is still running
    live.write_bytes(b"being written")

    def interrupted(fh):
        fh.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(out / "x.json", interrupted)
    with output_lock(out):
        pass
    assert not stale.exists() and not stale_dir.exists() and live.exists()
    assert sorted(p.name for p in out.iterdir()) == [live.name]


def test_json_outputs_are_strict(tmp_path):
    report = {"sd": float("nan"), "loss": [1.0, float("inf")], "n": 3, "t": (1, -float("inf"))}
    save_json(report, tmp_path / "m.json")

    def refuse(constant):
        raise ValueError(constant)

    for text in ((tmp_path / "m.json").read_text(), dumps_json(report)):
        assert json.loads(text, parse_constant=refuse) == {"sd": None, "loss": [1.0, None], "n": 3, "t": [1, None]}


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(make_checkpoint(build_model("nmnist_3c1fc", bn=False), {"bn": False}), path)
    return path


def test_damaged_checkpoints_name_the_file_and_the_problem(tmp_path, checkpoint):
    data = checkpoint.read_bytes()
    cases = {
        "empty.pt": (b"", "the file is empty"),
        "text.pt": (b"version https://git-lfs.github.com/spec/v1\n", "not a torch checkpoint: a text file"),
        "truncated.pt": (data[: len(data) // 2], "a truncated or damaged torch archive"),
        "binary.pt": (bytes(range(200, 256)) * 4, "not a torch checkpoint: unknown binary data"),
    }
    for name, (content, reason) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(SpeckMttError) as exc:
            load_checkpoint(tmp_path / name)
        assert str(exc.value).startswith(f"{tmp_path / name}: cannot be read as a speck-mtt checkpoint: {reason}")
        assert "\n" not in str(exc.value)


class Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_a_pickle_that_runs_code_is_refused(tmp_path, capsys):
    torch.save({"format": "speck-mtt-checkpoint", "x": Payload()}, tmp_path / "evil.pt", pickle_module=pickle)
    with pytest.raises(SpeckMttError, match=r"evil\.pt: .*refused by torch\.load\(weights_only=True\)"):
        load_checkpoint(tmp_path / "evil.pt")
    assert "code ran" not in capsys.readouterr().out


def test_incomplete_checkpoints_say_what_is_missing(tmp_path, checkpoint):
    ck = load_checkpoint(checkpoint)
    no_model = {k: v for k, v in ck.items() if k != "model"}
    save_checkpoint(no_model, tmp_path / "a.pt")
    with pytest.raises(SpeckMttError, match=r"a\.pt: damaged speck-mtt checkpoint: 'model' should be a dict, is missing"):
        load_checkpoint(tmp_path / "a.pt")
    with pytest.raises(SpeckMttError, match=r"b\.pt: arch_kwargs \{'width': 3\} do not fit architecture nmnist_3c1fc"):
        model_from_checkpoint({**ck, "arch_kwargs": {"width": 3}}, tmp_path / "b.pt")
