# speck-mtt recipes. `make install` then `make demo` (main job on the offline default); `make test`.
PY ?= .venv/bin/python
SPECK ?= .venv/bin/speck-mtt
DATA ?= data
RUNS ?= runs

.PHONY: install test bench demo hardware-test

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
