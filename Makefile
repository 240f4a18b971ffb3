# The two commands: `make figures` (regenerate every figure, CPU default profile) and `make test`.
# Both create .venv on first use: torch==2.13.0 (CPU build) first, then the package, keeping that torch.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.studio-installed
PROFILE ?= default
# pip's local mirrors print one harmless warning per package; keep the log readable.
QUIET_PIP := 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true

.PHONY: setup figures figures-check test test-fast lab notebooks clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip $(QUIET_PIP)
	$(PY) -m pip install --quiet torch==2.13.0 $(QUIET_PIP)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]' $(QUIET_PIP)
	@$(PY) -c "import torch, studio; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	$(PY) -m ipykernel install --sys-prefix --name studio --display-name "Python (studio)"
	@touch $(STAMP)

figures: setup
	$(VENV)/bin/studio figures --profile $(PROFILE)

figures-check: setup
	$(VENV)/bin/studio figures --profile $(PROFILE) --check

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow and not browser"

lab: setup
	$(PY) -m studio.workbench.lab

notebooks: setup
	$(VENV)/bin/studio sync

clean-venv:
	rm -rf $(VENV)
