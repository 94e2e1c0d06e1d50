# Thin aliases over the commands CI runs. Each target creates .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
ARGS ?=

# `make experiment` variables, turned into flags of `python -m experiments.run` (--help):
# CONFIG=a,b  QUICK=1  FORCE=1  OUT=DIR  DATASET=NAME  DATA_DIR=DIR  SNAPSHOT=DIR (empty: none);
# ARGS go through as they are, e.g. ARGS='--config.num_steps=200' overrides a config field.
yes = $(filter 1 true yes,$(1))
EXPERIMENT_FLAGS = $(if $(CONFIG),--config '$(CONFIG)') $(if $(call yes,$(QUICK)),--quick) \
	$(if $(call yes,$(FORCE)),--force) $(if $(OUT),--out '$(OUT)') \
	$(if $(DATASET),--dataset '$(DATASET)') $(if $(DATA_DIR),--data-dir '$(DATA_DIR)') \
	$(if $(filter undefined,$(origin SNAPSHOT)),,--snapshot '$(SNAPSHOT)')

.PHONY: venv test test-slow experiment bench bench-gpu lint format clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

venv: $(STAMP)

# Test files spread over JOBS processes (pytest-xdist, a file per process: module fixtures are
# built once); JOBS=1 runs them in this process.
JOBS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q $(if $(filter-out 1,$(JOBS)),-n $(JOBS) --dist loadfile) $(ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow $(ARGS)

experiment: $(STAMP)
	$(PY) -m experiments.run $(strip $(EXPERIMENT_FLAGS)) $(ARGS)

bench: $(STAMP)
	$(PY) -m experiments.bench $(ARGS)

# One GPU: K up to 1024 (MLP) and 128 (the others), sized for 8 minutes on an H100.
bench-gpu: $(STAMP)
	$(PY) -m experiments.bench --gpu --out docs/results/bench/gpu $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check lrjax experiments examples tests
	$(PY) -m ruff format --check lrjax experiments examples tests

format: $(STAMP)
	$(PY) -m ruff check --fix lrjax experiments examples tests
	$(PY) -m ruff format lrjax experiments examples tests

clean:
	rm -rf $(VENV) results .pytest_cache
