"""Faults a real run meets, made real: SIGTERM and ctrl-C sent to the installed console script, a
file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) under a write, a recording rewritten while a
training runs, temporaries that killed writers left in folders nobody locks. Each ends in one
line that says what was kept and how to continue, and leaves nothing half-written behind."""

from __future__ import annotations

import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from speck_mtt.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from speck_mtt.chip.deploy import deploy
from speck_mtt.data import frame_dataset
from speck_mtt.data.functional.mnist_idx import real_sample_path
from speck_mtt.files import LOCK_NAME, atomic_write
from speck_mtt.models import build_model
from speck_mtt.training.loop import run
from speck_mtt.training.recipe import load_recipe

CONSOLE = str(Path(sys.executable).with_name("speck-mtt"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# a tiny real-format N-MNIST run: 10 + 10 recordings, T = 2, two batches per epoch
TRAIN_SET = ["--threads", "1", "--set", "train.t_max=2", "--set", "data.batch_size=5", "--set", "train.calib_batches=1",
             "--set", "eval.epoch_ts=[2]", "--set", "eval.ts=[1,2]"]


def nmnist_dir(root: Path) -> Path:
    """root/NMNIST/{Train,Test}/<digit>/<id>.bin, one real recording per class and split."""
    data = real_sample_path().read_bytes()
    for split in ("Train", "Test"):
        for digit in range(10):
            folder = root / "NMNIST" / split / str(digit)
            folder.mkdir(parents=True)
            (folder / f"{digit:05d}.bin").write_bytes(data)
    return root


def start(args: list[str], limit_bytes: int | None = None, **kw) -> subprocess.Popen:
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write over the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.Popen([CONSOLE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=limit if limit_bytes else None, **kw)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def last_line(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    assert "Traceback" not in err, err
    return proc.returncode, err.strip().splitlines()[-1]


def test_sigterm_during_training_keeps_last_pt_releases_the_lock_and_resumes_exactly(tmp_path):
    data = nmnist_dir(tmp_path / "data")
    args = ["train", "nmnist", "--data-dir", str(data), "--out", str(tmp_path / "cut"), *TRAIN_SET,
            "--set", "train.epochs=12"]
    proc = start(args)
    wait_for(tmp_path / "cut" / "last.pt", proc)
    proc.send_signal(signal.SIGTERM)
    code, line = last_line(proc)
    assert code == 143, line
    held = load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"]
    when = (f"during epoch {held + 1}/12", f"after epoch {held}/12")  # the signal may land between two epochs
    assert line in [f"terminated (SIGTERM) {w}; {tmp_path / 'cut' / 'last.pt'} holds epoch {held}; continue with "
                    f"`{shlex.join(['speck-mtt', *args, '--resume'])}`" for w in when]
    assert not (tmp_path / "cut" / LOCK_NAME).exists() and not (tmp_path / "cut" / "model.pt").exists()
    assert not [p for p in (tmp_path / "cut").iterdir() if p.name.endswith(".tmp")]

    resumed = subprocess.run([CONSOLE, *args, "--resume"], capture_output=True, text=True, env=ENV, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    torch.set_num_threads(1)
    recipe = load_recipe("nmnist", overrides={"train": {"t_max": 2, "calib_batches": 1, "epochs": 12},
                                              "data": {"batch_size": 5}, "eval": {"epoch_ts": [2], "ts": [1, 2]}})
    full = run(recipe, tmp_path / "full", data_dir=str(data), progress=False)  # the same run, never stopped
    assert json.loads((tmp_path / "cut" / "eval.json").read_text())["accuracy"] == full["eval"]["accuracy"]
    a, b = (load_checkpoint(tmp_path / d / "model.pt")["model"] for d in ("full", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("faults")
    torch.manual_seed(0)
    model = build_model("nmnist_3c1fc")
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    save_checkpoint(make_checkpoint(model, {"floor": -8.0}), tmp / "ckpt.pt")
    deploy(tmp / "ckpt.pt", "sim", tmp / "dep", samples=0)
    return tmp


def test_ctrl_c_during_measure_says_rerun_not_resume(deployed, tmp_path):
    args = ["measure", str(deployed / "dep"), "--dataset", "nmnist-sim", "--data-dir", str(tmp_path / "data"),
            "--limit", "40", "--workers", "1", "--record", str(tmp_path / "run.npz")]
    proc = start(args)
    wait_for(deployed / "dep" / LOCK_NAME, proc)
    proc.send_signal(signal.SIGINT)
    code, line = last_line(proc)
    assert code == 130, line
    assert line.startswith("interrupted; no result was written") and line.endswith(f"; rerun `{shlex.join(['speck-mtt', *args])}`")
    assert "--resume" not in line
    assert not (deployed / "dep" / LOCK_NAME).exists() and not (tmp_path / "run.npz").exists()
    assert not (deployed / "dep" / "measure-sim.json").exists()


def test_sigterm_during_deploy_leaves_no_artifact(deployed, tmp_path):
    out = tmp_path / "dep"
    args = ["deploy", str(deployed / "ckpt.pt"), "--target", "sim", "--out", str(out), "--dataset", "nmnist-sim",
            "--data-dir", str(tmp_path / "data"), "--samples", "4"]
    proc = start(args)
    wait_for(out / LOCK_NAME, proc)
    proc.send_signal(signal.SIGTERM)
    code, line = last_line(proc)
    assert code == 143, line
    assert line == ("terminated (SIGTERM); no complete deployment was written (artifact.pt, what measure reads, is "
                    f"written last); rerun `{shlex.join(['speck-mtt', *args])}`")
    assert not (out / "artifact.pt").exists() and not (out / LOCK_NAME).exists()


def test_a_file_size_limit_under_the_first_checkpoint_names_the_file_and_what_is_safe(tmp_path):
    data = nmnist_dir(tmp_path / "data")
    for split in ("train", "test"):  # frames cached beforehand: the first large write is last.pt (~110 kB)
        frame_dataset("nmnist", split, 2, data)
    out = tmp_path / "run"
    proc = start(["train", "nmnist", "--data-dir", str(data), "--out", str(out), *TRAIN_SET, "--set", "train.epochs=2"],
                 limit_bytes=60_000)
    code, line = last_line(proc)
    assert code == 2
    assert line == (f"error: {out / 'last.pt'}: cannot be written (File too large); no partial file was left; raise "
                    "the file-size limit (ulimit -f), or write to another folder; training stopped during epoch 1/2; "
                    "no checkpoint written yet; rerun")
    assert sorted(p.name for p in out.iterdir()) == ["metrics.csv", "metrics.json"]  # no lock, no temporary


def test_a_recording_rewritten_during_training_stops_it_at_the_next_epoch(tmp_path):
    data = nmnist_dir(tmp_path / "data")
    out = tmp_path / "run"
    proc = start(["train", "nmnist", "--data-dir", str(data), "--out", str(out), *TRAIN_SET, "--set", "train.epochs=40"])
    wait_for(out / "last.pt", proc)
    victim = data / "NMNIST" / "Train" / "3" / "00003.bin"
    raw = bytearray(victim.read_bytes())
    raw[-1] ^= 1  # the last event one microsecond later: still a valid recording, other data
    victim.write_bytes(bytes(raw))
    code, line = last_line(proc)
    assert code == 2, line
    epoch = load_checkpoint(out / "last.pt")["epoch"]
    assert line == (f"error: {victim} was rewritten during training (seen after epoch {epoch}); {out / 'last.pt'} holds "
                    f"epoch {epoch}, trained on the files as they were: restore the file and continue with --resume, "
                    "or start afresh in another --out")
    assert epoch < 40 and not (out / "model.pt").exists()


def test_a_stand_in_generation_cut_by_a_full_disk_is_continued_not_taken_as_complete(tmp_path):
    from speck_mtt.data.sim import GENERATORS, MARKER

    root = GENERATORS["nmnist-sim"].folder
    whole = tmp_path / "whole"  # the same 12 recordings generated without a limit, for their sizes and bytes
    frame_dataset("nmnist-sim", "train", 2, whole, limit=12)
    files = sorted((whole / root).rglob("*.bin"))
    sizes = sorted(f.stat().st_size for f in files)
    cut = tmp_path / "cut"
    args = ["data", "prepare", "nmnist-sim", "--data-dir", str(cut), "--limit", "12", "--frames", "2"]
    code, line = last_line(start(args, limit_bytes=sizes[len(sizes) // 2]))
    assert code == 2 and line.startswith(f"error: {cut / root}/Train/") and "cannot be written (File too large)" in line
    assert line.endswith("train recordings generated before it are kept and the split is not marked complete: "
                         "rerun to continue")
    assert "train" not in json.loads((cut / root / MARKER).read_text())["complete"]
    assert not list(cut.rglob("*.tmp"))
    stale = cut / root / f".{MARKER}.{dead_pid()}.x.tmp"  # what a generator killed mid-write leaves
    stale.write_bytes(b"half")
    again = subprocess.run([CONSOLE, *args], capture_output=True, text=True, env=ENV, timeout=300)
    assert again.returncode == 0, again.stderr
    assert not stale.exists()  # (the split stays unmarked: 12 of its 8000 recordings exist)
    for f in files:
        assert (cut / f.relative_to(whole)).read_bytes() == f.read_bytes()


def test_measure_record_over_a_file_size_limit_leaves_no_recording(deployed, tmp_path):
    from speck_mtt.measure import measure

    measure(deployed / "dep", dataset="nmnist-sim", data_dir=tmp_path / "data", limit=40, workers=1,
            out=tmp_path / "warm.json")  # the data generated and the kernels compiled beforehand
    record = tmp_path / "run.npz"
    proc = start(["measure", str(deployed / "dep"), "--dataset", "nmnist-sim", "--data-dir", str(tmp_path / "data"),
                  "--limit", "40", "--workers", "1", "--record", str(record), "--out", str(tmp_path / "m.json")],
                 limit_bytes=2048)
    code, line = last_line(proc)
    assert code == 2
    assert line.startswith(f"error: {record}: cannot be written (File too large); no partial file was left")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "warm.json"]  # no recording, result, temporary


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_report_removes_the_temporaries_of_killed_writers(tmp_path):
    root = tmp_path / "runs"
    (root / "mtt").mkdir(parents=True)
    (root / "mtt" / "eval.json").write_text(json.dumps({"t": [1, 2], "accuracy": [0.5, 0.9], "n_samples": 10,
                                                          "dataset": "nmnist-sim"}))
    stale, live = root / f".report.md.{dead_pid()}.ab12.tmp", root / f".report.md.{os.getpid()}.cd34.tmp"
    stale.write_text("half a report")
    live.write_text("a report being written")
    done = subprocess.run([CONSOLE, "report", str(root), "--no-plot"], capture_output=True, text=True, env=ENV,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert not stale.exists() and live.exists() and (root / "report.md").is_file()


def test_atomic_write_flushes_the_file_and_then_its_folder(tmp_path, monkeypatch):
    import stat

    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(stat.S_ISDIR(os.fstat(fd).st_mode)), real(fd)))
    atomic_write(tmp_path / "x.json", lambda fh: fh.write(b"{}"))
    assert synced == [False, True]
