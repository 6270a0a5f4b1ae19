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

.PHONY: benchmark test install clean mlflow-ui chromium mutation

$(STAMP): pyproject.toml requirements/constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version.split()[0]} at {sys.executable}"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

benchmark: $(STAMP)
	$(BIN)/videolstm benchmark --config $(CONFIG)

# Lint and format check (ruff, [tool.ruff]; `ruff format .` fixes the format) and types of the
# library (mypy, [tool.mypy]) first, then the suite.
test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy videolstm
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Mutation score of one module (slow, not part of `make test`), e.g.
#   make mutation MODULE=videolstm/evaluation/claims.py
# Modules and their tests: tests/mutation/modules.toml; results: docs/mutation-testing.md.
mutation: $(STAMP)
	@test -n "$(MODULE)" || { echo "usage: make mutation MODULE=videolstm/evaluation/claims.py (see tests/mutation/modules.toml)" >&2; exit 2; }
	$(BIN)/python tests/mutation/mutate.py $(MODULE)

# The MLflow UI test drives a real browser: Debian's chromium (Playwright uses it, downloads none).
# Installed here when missing and this is a root shell with apt-get; otherwise the one command to run.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the MLflow UI browser test (apt-get install -y chromium)"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	      || { echo "could not install chromium; run: apt-get install -y chromium" >&2; exit 1; }; \
	  else \
	    echo "the MLflow UI browser test needs Chromium; run: sudo apt-get install -y chromium" >&2; exit 1; \
	  fi; }

mlflow-ui: $(STAMP)
	@echo "open http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning (the benchmark's runs; the first experiment of runs/embedded)"
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///runs/embedded/mlflow.db

clean:
	rm -rf $(VENV) .prefect runs .pytest_cache
