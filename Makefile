# Two entry points (see README): `make benchmark` and `make test`.
# Both create ./.venv with the exact tested versions on first use.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/embedded.yaml
STAMP := $(VENV)/.installed

# Keep state inside the project and telemetry off unless the caller says otherwise.
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_UI_ENABLED ?= false
export MLFLOW_DISABLE_TELEMETRY ?= true
export DO_NOT_TRACK ?= 1
export RAY_AUTH_MODE ?= disabled
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: benchmark test install clean mlflow-ui

$(STAMP): pyproject.toml requirements/constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version.split()[0]} at {sys.executable}"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

benchmark: $(STAMP)
	$(BIN)/videolstm benchmark --config $(CONFIG)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --host 127.0.0.1 --backend-store-uri sqlite:///runs/embedded/mlflow.db

clean:
	rm -rf $(VENV) .prefect runs .pytest_cache
