#!/usr/bin/env bash
# VGGSNN on cifar10dvs-sim at full size (2,000 training, 500 test recordings, T 10, batch 32) on a
# CUDA GPU for a few epochs of SDT and of MTT, in under 8 minutes: samples/s and accuracy per
# epoch, written into OUT (gpu_check.json, gpu_check.md, the training folders, the log).
#
# usage: bench/gpu_check.sh OUT [--cpu-tiny]
#   --cpu-tiny   the same steps on the CPU at the recipe's quick size (16 / 8 recordings, T 2):
#                checks the script where there is no GPU (CI never needs one)
# env: SPECK, PY (default .venv/bin/...), EPOCHS (default 4), BUDGET_S (default 450: the trainings
#      stop there and the summary reports the epochs done), SPECK_MTT_DATA (default OUT/data)
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ] || { [ $# = 2 ] && [ "$2" != --cpu-tiny ]; }; then
    echo "usage: bench/gpu_check.sh OUT [--cpu-tiny]: OUT is the folder the results go to" >&2
    exit 2
fi
out=$1 tiny=${2:-}
SPECK=${SPECK:-.venv/bin/speck-mtt}
PY=${PY:-.venv/bin/python}
EPOCHS=${EPOCHS:-4}
BUDGET_S=${BUDGET_S:-450}
if ! command -v "$SPECK" > /dev/null; then
    echo "error: $SPECK not found: run \`make install\` first, or set SPECK to the speck-mtt command" >&2
    exit 2
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
export SPECK_MTT_DATA=${SPECK_MTT_DATA:-$out/data}
start=$(date +%s)

if [ -n "$tiny" ]; then
    device=cpu size=(--quick) prepare=(--limit 16) frames=2 epochs=1
else
    if ! $PY -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
        echo "error: torch sees no CUDA device: run on a GPU machine, or pass --cpu-tiny to check the script" >&2
        exit 2
    fi
    device=cuda size=() prepare=() frames=10 epochs=$EPOCHS
    nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
fi
exec > >(tee -a "$out/gpu_check.log") 2>&1
echo "== gpu_check: device $device, $epochs epochs per method, budget ${BUDGET_S} s, data $SPECK_MTT_DATA"

# the recordings, in one process per core (2,500 recordings: about 12 min on one core), and the frame cache
echo "== generate cifar10dvs-sim ($(getconf _NPROCESSORS_ONLN) processes) and cache its frames at T=$frames"
$SPECK data prepare cifar10dvs-sim --workers "$(getconf _NPROCESSORS_ONLN)" --frames "$frames" "${prepare[@]}"

for m in sdt mtt; do
    left=$(( start + BUDGET_S - $(date +%s) ))
    if [ $left -le 10 ]; then echo "== $m: no time left in the budget, skipped"; continue; fi
    echo "== train VGGSNN $m on $device, $epochs epochs (at most $left s)"
    rm -rf "$out/$m"
    timeout --signal=INT "$left" $SPECK train cifar10dvs --dataset cifar10dvs-sim --method "$m" --device "$device" \
        --epochs "$epochs" "${size[@]}" --out "$out/$m" || echo "== $m stopped (exit $?): the summary has the epochs done"
done

$PY - "$out" "$device" "$(( $(date +%s) - start ))" "$tiny" <<'EOF'
import json, sys
from pathlib import Path

from speck_mtt.data.sim import GENERATORS
from speck_mtt.training.recipe import load_recipe

out, device, wall, tiny = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), bool(sys.argv[4])
n_train = load_recipe("cifar10dvs", quick=tiny).data.limit_train or GENERATORS["cifar10dvs-sim"].n_train
lines = [f"# VGGSNN on cifar10dvs-sim, {device}, {n_train} training recordings", "",
         "| method | epoch | samples/s | epoch s | test accuracy |", "|---|---:|---:|---:|---|"]
runs = {}
for m in ("sdt", "mtt"):
    path = out / m / "metrics.json"
    if not path.is_file():
        continue
    runs[m] = [{"epoch": r["epoch"], "epoch_time_s": r["epoch_time_s"], "samples_per_s": n_train / r["epoch_time_s"],
                "train_acc": r["train_acc"],
                "test_acc": {k[len("test_acc_"):]: v for k, v in r.items() if k.startswith("test_acc_")}}
               for r in json.loads(path.read_text())]
    for r in runs[m]:
        acc = ", ".join(f"{t} {100 * a:.1f}%" for t, a in r["test_acc"].items())
        lines.append(f"| {m} | {r['epoch']} | {r['samples_per_s']:.1f} | {r['epoch_time_s']:.1f} | {acc} |")
if "sdt" in runs and "mtt" in runs:
    ratio = sum(r["epoch_time_s"] for r in runs["mtt"]) / len(runs["mtt"]) / (
        sum(r["epoch_time_s"] for r in runs["sdt"]) / len(runs["sdt"]))
    lines += ["", f"MTT/SDT epoch time {ratio:.2f}x"]
lines += ["", f"wall {wall} s (generation, frame cache and both trainings)"]
summary = {"device": device, "n_train": n_train, "wall_s": wall, "runs": runs}
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
(out / "gpu_check.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
echo "== gpu_check done in $(( $(date +%s) - start )) s: $out/gpu_check.md"
