# speck-mtt recipes. `make install nmnist-sim` runs the main job on the built-in offline default;
# `make test` runs the tests. One results folder per dataset under $(RESULTS)/.
PY ?= .venv/bin/python
SPECK ?= .venv/bin/speck-mtt
RESULTS ?= results
# Threads of torch, numba and BLAS for the recipes: all cores by default. Run one recipe at a time
# and nothing CPU-heavy beside it: trainings sharing 2 cores ran their epochs 9-16x slower
# (docs/cifar10dvs-sim.md).
THREADS ?= $(shell getconf _NPROCESSORS_ONLN)
PAPER = OMP_NUM_THREADS=$(THREADS) MKL_NUM_THREADS=$(THREADS) NUMBA_NUM_THREADS=$(THREADS) \
	SPECK=$(SPECK) PY=$(PY) recipes/paper.sh

.PHONY: install install-latest test bench demo hardware-test nmnist-sim nmnist-sim-t30 nmnist gesture-sim gesture cifar10dvs cifar10dvs-sim

# install: the versions the tests passed with (constraints.txt; torch first, so pip takes the CPU
# wheel of the configured index); install-latest: the newest releases pyproject.toml allows.
install:
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt torch
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"

install-latest:
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --upgrade --upgrade-strategy eager torch
	$(PY) -m pip install -q --upgrade --upgrade-strategy eager -e ".[dev]"

test:
	$(PY) -m pytest -q tests

hardware-test:
	$(PY) -m pytest -q hardware_tests -m hardware -rs

bench:
	$(PY) -m bench

# Quick end-to-end run (a minute or two): small subsets, few epochs; numbers are not meaningful.
demo:
	$(PAPER) nmnist nmnist-sim $(RESULTS)/demo --quick

# The paper's experiments (MTT and SDT: base, bias removal, deploy, simulator [+ chip], Table 5).
nmnist-sim:
	$(PAPER) nmnist nmnist-sim $(RESULTS)/nmnist-sim

# The same at T_max = 30 (10 ms frames instead of 30 ms): how far the event-driven accuracy
# follows the training resolution on nmnist-sim (README, Results).
nmnist-sim-t30:
	$(PAPER) nmnist nmnist-sim $(RESULTS)/nmnist-sim-t30 --set train.t_max=30

# The offline DVS-Gesture stand-in (generator version 2: 29 subjects, 1,265 training and 330 test
# recordings; docs/gesture-sim.md). T_max 40 as in the paper; 8 base and 2 bias-removal epochs
# (paper: 100 and 20) fit about an hour of one shared core; eval.ts: the T the report plots.
GESTURE_SIM ?= --set train.epochs=8 --set bias_removal.epochs=2 --set 'eval.ts=[1,5,10,20,30,40]'
gesture-sim:
	$(PAPER) gesture gesture-sim $(RESULTS)/gesture-sim $(GESTURE_SIM)

# Real datasets under $(SPECK_MTT_DATA) or ./data (the layout is in README.md); without their
# files nmnist and gesture fall back to their offline stand-in and say so.
nmnist:
	$(PAPER) nmnist nmnist $(RESULTS)/nmnist

gesture:
	$(PAPER) gesture gesture $(RESULTS)/gesture

cifar10dvs:
	TARGET=sim $(PAPER) cifar10dvs cifar10dvs $(RESULTS)/cifar10dvs

# The offline CIFAR10-DVS stand-in, full size (v2: 2,000 training and 500 test recordings; VGGSNN:
# Speck2e refuses it, the simulator measures all 500): T_max 10 as in the paper, batch 16, 12 base
# epochs and 2 bias-free fine-tune epochs per method. About 3.5 h on 2 quiet cores (about 2.6 h of
# it the two base trainings), resumable after a kill at any point; run it alone, e.g.
#   nohup make cifar10dvs-sim > cifar10dvs-sim.log 2>&1 &
# (docs/cifar10dvs-sim.md: the measured costs behind these choices). CIFAR_SIM=--quick LIMIT=8:
# the smallest end-to-end run.
CIFAR_SIM ?= --set train.epochs=12 --set data.batch_size=16 --set bias_removal.epochs=2
cifar10dvs-sim:
	TARGET=sim $(PAPER) cifar10dvs cifar10dvs-sim $(RESULTS)/cifar10dvs-sim $(CIFAR_SIM)
