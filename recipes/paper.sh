#!/usr/bin/env bash
# The paper's experiment for one dataset, end to end, into one results folder:
#   per method: base training -> bias removal (absorb BN, drop bias, locked-BN fine-tune with the
#   same method) -> deploy -> measure on the simulator (and on a Speck2e devkit when one is
#   connected, twice, for the chip-vs-chip SD); models trained on the nmnist-sim stand-in are also
#   measured on nmnist-real800 (800 real N-MNIST recordings shipped with the package); then the
#   Table-5 report.
# Re-running continues: a finished step is skipped (a measure counts as finished once its JSON and
# a stamp naming its T and LIMIT are written), an interrupted training run resumes from its last
# epoch, an interrupted deploy or measure starts that one step again; a folder made from other
# data (a changed generator or other files) stops with an error. Long runs: run one at a time, with
# the thread count set (the Makefile passes OMP_NUM_THREADS), and nothing else CPU-heavy beside it.
#
# usage: recipes/paper.sh RECIPE DATASET RESULTS [extra `speck-mtt train` options...]
# env:   SPECK (the speck-mtt command), PY (the python that has speck_mtt), METHODS (default "mtt sdt"), TARGET (speck2e | sim),
#        T (T of the torch-vs-simulator comparison; default the recipe's T_max), LIMIT (test samples)
set -euo pipefail
recipe=$1 dataset=$2 results=$3
shift 3
SPECK=${SPECK:-speck-mtt}
PY=${PY:-python3}
METHODS=${METHODS:-mtt sdt}
TARGET=${TARGET:-speck2e}
limit=${LIMIT:+--limit $LIMIT}
mkdir -p "$results"
start=$(date +%s)
cores=$(getconf _NPROCESSORS_ONLN)  # not nproc: it reports OMP_NUM_THREADS when that is set
load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
echo "== ${OMP_NUM_THREADS:-all} threads on $cores cores, load average $load"
if awk -v l="$load" -v n="$cores" 'BEGIN { exit !(l > n / 2) }'; then
    echo "== warning: the machine is busy (load $load on $cores cores): epochs that share the cores with other" \
         "trainings ran 9-16x slower (docs/cifar10dvs-sim.md); run this alone for the expected wall time"
fi

# A results folder belongs to the data it was made from: finished steps are only skipped when the
# dataset's fingerprint (generator parameters, or the real files' names, sizes and bytes) is
# unchanged; `train --resume` checks the same fingerprint (speck_mtt.data.datasets.fingerprint_of).
fingerprint=$($PY -c 'import sys
from speck_mtt.data import resolve_dataset
from speck_mtt.data.datasets import data_fingerprint
print(data_fingerprint(resolve_dataset(sys.argv[1], None)))' "$dataset")
stamp="$results/data-fingerprint.txt"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" != "$fingerprint" ]; then
    echo "error: $results was made from other data ($(cat "$stamp"); now $fingerprint): remove $results or pick another results folder" >&2
    exit 2
fi
echo "$fingerprint" > "$stamp.$$" && mv "$stamp.$$" "$stamp"  # atomic: METHODS=mtt and METHODS=sdt may run at once
real=0  # stand-in models are measured on real recordings too (never a model trained on real N-MNIST:
[ "${fingerprint%% *}" = nmnist-sim ] && real=1  # nmnist-real800 holds N-MNIST training recordings)

train() {  # OUT [train options]: skip when OUT/model.pt exists, resume when OUT/last.pt exists
    local out=$1
    shift
    if [ -f "$out/model.pt" ]; then echo "== $out/model.pt exists, skipped"; return; fi
    local resume=()
    [ -f "$out/last.pt" ] && resume=(--resume)
    echo "== train $recipe $* -> $out"
    $SPECK train "$recipe" --dataset "$dataset" --out "$out" "${resume[@]}" "$@"
}

measure() {  # BASE WHAT [measure options]: BASE.json and BASE.npz; skipped when BASE.done names the same T and LIMIT
    local base=$1 what=$2
    shift 2
    local deploy=${base%/*} key="t=${t} limit=${LIMIT:-all}"
    if [ -f "$base.done" ] && [ -f "$base.json" ] && [ "$(cat "$base.done")" = "$key" ]; then
        echo "== $base.json exists ($key), skipped"; return
    fi
    rm -f "$base.done"
    echo "== measure $deploy on $what"
    $SPECK measure "$deploy" "$@" $limit --record "$base.npz" --out "$base.json"
    echo "$key" > "$base.done.$$" && mv "$base.done.$$" "$base.done"  # after the JSON: a killed measure reruns
}

chip=0  # find_devkit never imports the PyPI samna stub: it checks for the real samna first
if [ "$TARGET" = speck2e ] && $PY -c 'from speck_mtt.chip.devkit import find_devkit; find_devkit()' 2>/dev/null; then
    chip=1
fi
[ $chip = 1 ] && echo "== Speck2e devkit found: measuring on the chip too" \
              || echo "== no Speck2e devkit (or no real samna): simulator only"

for m in $METHODS; do
    r="$results/$m"
    train "$r/base" --method "$m" "$@"
    train "$r" --phase bias-removal --method "$m" --from "$r/base/model.pt" "$@"
    if [ ! -f "$r/deploy/artifact.pt" ]; then  # deploy writes artifact.pt last (atomically): a killed deploy reruns
        echo "== deploy $r/model.pt --target $TARGET"
        $SPECK deploy "$r/model.pt" --target "$TARGET" --dataset "$dataset" --out "$r/deploy"
    fi
    t=${T:-$($PY -c 'import sys, torch; print(torch.load(sys.argv[1], weights_only=True)["t_max"])' "$r/model.pt")}
    measure "$r/deploy/measure-sim" "the simulator (vs torch at T=$t)" \
        --backend sim --dataset "$dataset" --t "$t" --progress
    if [ $real = 1 ]; then
        measure "$r/deploy/measure-sim-nmnist-real800" "nmnist-real800, real N-MNIST recordings (vs torch at T=$t)" \
            --backend sim --dataset nmnist-real800 --t "$t" --progress
    fi
    if [ $chip = 1 ]; then
        for run in 1 2; do
            measure "$r/deploy/measure-speck2e-$run" "the Speck2e devkit (run $run)" --backend speck2e --dataset "$dataset"
        done
    fi
done
$SPECK report "$results"
echo "== $results done in $(( $(date +%s) - start )) s"
