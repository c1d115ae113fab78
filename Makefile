# speck-mtt recipes. `make install nmnist-sim` runs the main job on the built-in offline default;
# `make test` runs the tests. One results folder per dataset under $(RESULTS)/.
PY ?= .venv/bin/python
SPECK ?= .venv/bin/speck-mtt
RESULTS ?= results
PAPER = SPECK=$(SPECK) PY=$(PY) recipes/paper.sh

.PHONY: install test bench demo hardware-test nmnist-sim nmnist-sim-t30 nmnist gesture-sim gesture cifar10dvs cifar10dvs-sim

install:
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"

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

# The offline CIFAR10-DVS stand-in (VGGSNN: Speck2e refuses it, the simulator measures it on the
# 100 test recordings). VGGSNN is large for 2 CPU cores: 200 training recordings, 2 base epochs,
# 1 bias-removal epoch, T_max 4 (docs/cifar10dvs-sim.md: times and what the numbers can show).
# CIFAR_SIM=--quick LIMIT=8: the smallest end-to-end run.
CIFAR_SIM ?= --set data.limit_train=200 --set train.epochs=2 --set bias_removal.epochs=1 --set train.t_max=4 \
	--set 'eval.ts=[1,2,4]' --set 'eval.epoch_ts=[4]'
cifar10dvs-sim:
	TARGET=sim $(PAPER) cifar10dvs cifar10dvs-sim $(RESULTS)/cifar10dvs-sim $(CIFAR_SIM)
