"""recipes/paper.sh continues after a kill in every phase (base training, bias removal, deploy,
measure) without redoing finished work, on a tiny nmnist-sim run (SDT only, 64 recordings).

SPECK is a wrapper around the installed console script that kills one step, once: a training
with SIGKILL once its first epoch's last.pt is written (mid-phase); deploy after everything but
artifact.pt, which deploy writes last (what a kill before its last write leaves); measure after
its JSON, before paper.sh stamps it done (the measure must then run again)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SPECK = str(Path(sys.executable).with_name("speck-mtt"))
SCRIPT = Path(__file__).resolve().parents[1] / "recipes" / "paper.sh"
WRAPPER = r"""#!/usr/bin/env bash
# kill the step named by $KILL_AT once (the file $KILL_AT.killed marks it done)
out=
prev=
for a in "$@"; do [ "$prev" = --out ] && out=$a; prev=$a; done
step=$1
[ "$1" = train ] && { [[ " $* " == *" bias-removal "* ]] && step=bias || step=base; }
if [ -n "$KILL_AT" ] && [ "$step" = "$KILL_AT" ] && [ ! -f "$MARKS/$KILL_AT.killed" ]; then
    touch "$MARKS/$KILL_AT.killed"
    case $step in
    base|bias)
        "$REAL" "$@" & pid=$!
        while [ ! -f "$out/last.pt" ] && kill -0 $pid 2>/dev/null; do sleep 0.1; done
        kill -9 $pid; wait $pid; exit 137 ;;
    deploy)
        "$REAL" "$@"; rm -f "$out/artifact.pt"; exit 137 ;;
    measure)
        "$REAL" "$@"; exit 137 ;;
    esac
fi
exec "$REAL" "$@"
"""
TINY = ["--quick", "--set", "data.limit_train=64", "--set", "data.limit_test=16", "--set", "train.epochs=2",
        "--set", "bias_removal.epochs=2", "--set", "bias_removal.t_max=0"]


@pytest.mark.slow  # six short paper.sh runs: about a minute on 2 quiet cores, 5 on busy ones
def test_paper_pipeline_resumes_after_a_kill_in_every_phase(tmp_path):
    wrapper = tmp_path / "speck"
    wrapper.write_text(WRAPPER)
    wrapper.chmod(0o755)
    results = tmp_path / "results"
    env = {**os.environ, "SPECK": str(wrapper), "REAL": SPECK, "PY": sys.executable, "MARKS": str(tmp_path),
           "SPECK_MTT_DATA": str(tmp_path / "data"), "METHODS": "sdt", "LIMIT": "8", "TARGET": "sim",
           "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}

    def paper(kill_at: str | None) -> subprocess.CompletedProcess:
        run = subprocess.run(["bash", str(SCRIPT), "nmnist", "nmnist-sim", str(results), *TINY],
                             env={**env, "KILL_AT": kill_at or ""}, capture_output=True, text=True, timeout=600)
        assert (run.returncode == 0) == (kill_at is None), run.stdout + run.stderr
        return run

    r = results / "sdt"
    base, model, deploy = r / "base" / "model.pt", r / "model.pt", r / "deploy"
    paper("base")  # killed after base epoch 1 of 2
    assert (r / "base" / "last.pt").is_file() and not base.exists()
    run = paper("bias")  # base resumes at epoch 2; the fine-tune is killed after its epoch 1
    assert "resuming" in run.stderr and "after epoch 1" in run.stderr and base.is_file()
    assert (r / "last.pt").is_file() and not model.exists()
    base_time = base.stat().st_mtime_ns
    run = paper("deploy")  # the fine-tune resumes; deploy dies before artifact.pt
    assert f"{base} exists, skipped" in run.stdout and "resuming" in run.stderr and model.is_file()
    assert not (deploy / "artifact.pt").exists()
    model_time = model.stat().st_mtime_ns
    run = paper("measure")  # deploy again; measure dies after its JSON, before the stamp
    assert "== deploy" in run.stdout and (deploy / "artifact.pt").is_file()
    assert (deploy / "measure-sim.json").is_file() and not (deploy / "measure-sim.done").exists()
    artifact_time = (deploy / "artifact.pt").stat().st_mtime_ns
    run = paper(None)  # only the measure runs again, then the report
    assert "== deploy" not in run.stdout and "== measure" in run.stdout and (results / "report.md").is_file()
    assert (deploy / "measure-sim.done").read_text().split() == ["t=10", "limit=8"]
    run = paper(None)  # finished: every step skipped
    assert "measure-sim.json exists (t=10 limit=8), skipped" in run.stdout and "== train" not in run.stdout
    assert (base.stat().st_mtime_ns, model.stat().st_mtime_ns, (deploy / "artifact.pt").stat().st_mtime_ns) == \
        (base_time, model_time, artifact_time)
