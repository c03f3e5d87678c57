# One command sets up and runs the main job; one sets up and passes the tests.
#   make run    # .venv from pyproject.toml, local Prefect server, train-flow on a local Dask
#               # cluster; both stay up (UI, dashboard, charts) until `make stop`
#   make test   # .venv, then the test suite (real Prefect server, real Dask cluster)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The suite on 3 pytest-xdist workers, each with its own Prefect server (tests/conftest.py);
# a module stays on one worker, the longest modules start first. `make test PYTEST_ARGS=`
# runs it serially.
PYTEST_ARGS ?= -n 3 --dist loadfile --no-loadscope-reorder
# Soak tests (a longer load test beside a shorter one of the same behaviour) run with
# `make soak`, not in `make test`.
PYTEST_MARKS ?= not soak

.PHONY: setup run stop test soak lint format bench bench-quick server-stop clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python cluster/local.py ensure $(CLUSTER_ARGS)
	$(BIN)/python flows/train.py --runner dask

stop: $(STAMP)
	$(BIN)/python cluster/local.py stop
	$(BIN)/python flows/server.py stop

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS) -m "$(PYTEST_MARKS)"

soak: $(STAMP)
	$(BIN)/python -m pytest -m soak

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/compare.py

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/compare.py --quick

server-stop: $(STAMP)
	$(BIN)/python flows/server.py stop

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
