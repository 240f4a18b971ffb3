# The two commands: `make figures` (regenerate every figure, CPU default profile) and `make test`.
# Both create .venv on first use from requirements.lock (every package version that made the committed
# figures; torch is the 2.13.0 CPU build), then install the package itself without touching those pins.
# `make lock` refreshes the lock from pyproject.toml (pip-tools); constraints.txt keeps the CPU torch.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.studio-installed
PROFILE ?= default
JOBS ?=
# pip's local mirrors print one harmless warning per package: filter it, but keep pip's exit status
# (pipefail) so that a failed install stops here with pip's own message.
QUIET_PIP := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: setup figures figures-check test test-fast lint lab notebooks lock clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip $(QUIET_PIP)
	$(PY) -m pip install --quiet -c constraints.txt -r requirements.lock $(QUIET_PIP)
	$(PY) -m pip install --quiet --no-deps -e . $(QUIET_PIP)
	@$(PY) -c "import torch, studio; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	$(PY) -m ipykernel install --sys-prefix --name studio --display-name "Python (studio)"
	@touch $(STAMP)

figures: setup
	$(VENV)/bin/studio figures --profile $(PROFILE) $(if $(JOBS),--jobs $(JOBS))

figures-check: setup
	$(VENV)/bin/studio figures --profile $(PROFILE) --check $(if $(JOBS),--jobs $(JOBS))

lint: setup
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# One pytest worker per core (pytest-xdist); worksteal hands a long test's neighbours to an idle worker.
# Each worker is its own session with its own temporary runs/sweeps/cache root (tests/conftest.py).
PYTEST_PARALLEL := -n auto --dist worksteal

test: lint
	$(PY) -m pytest $(PYTEST_PARALLEL)

test-fast: setup
	$(PY) -m pytest $(PYTEST_PARALLEL) -m "not slow and not browser"

lab: setup
	$(PY) -m studio.workbench.lab

notebooks: setup
	$(VENV)/bin/studio sync

lock: setup
	$(VENV)/bin/pip-compile --quiet --extra test --strip-extras --no-emit-index-url --no-emit-find-links \
		-c constraints.txt -o requirements.lock pyproject.toml

clean-venv:
	rm -rf $(VENV)
