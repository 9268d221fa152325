# Developer entry points. `make test` is what CI runs (through .ci/run).
#   make venv   create .venv and install ketch with the dev extras (again when pyproject.toml changes)
#   make demo   run the demo (scripts/demo.sh)
#   make test   PostgreSQL binaries, ruff, mypy, pytest (scripts/test.sh; ARGS="..." go to pytest)
#   make lint   ruff and mypy only
#   make clean  remove caches and build output; `make distclean` also removes .venv

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
ARGS ?=

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

# Fails with a clear message unless $(1) is Python 3.11 or newer; $(2) says what to do.
define require_python
	@command -v $(1) >/dev/null 2>&1 || { echo "error: '$(1)' not found on PATH; ketch needs Python >= 3.11" >&2; exit 1; }
	@$(1) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "error: ketch needs Python >= 3.11, but $(1) is $$($(1) -c 'import platform; print(platform.python_version())'); $(2)" >&2; exit 1; }
endef

.PHONY: venv demo test lint clean distclean

venv: $(STAMP)

# The stamp lives inside .venv, so deleting .venv also forces a reinstall.
$(STAMP): pyproject.toml
	$(call require_python,$(PYTHON),run with PYTHON=/path/to/python3.11+)
	@if [ ! -x $(VENV)/bin/python ]; then \
		echo "creating $(VENV) with $$(command -v $(PYTHON))"; \
		$(PYTHON) -m venv $(VENV) || { echo "error: '$(PYTHON) -m venv' failed (on Debian: apt-get install python3-venv)" >&2; exit 1; }; \
	fi
	$(call require_python,$(VENV)/bin/python,remove $(VENV) (make distclean) and retry with PYTHON=/path/to/python3.11+)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(VENV)/bin/python -m pip install --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: venv
	bash scripts/demo.sh $(ARGS)

test: venv
	bash scripts/test.sh $(ARGS)

lint: venv
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis .schemathesis .ketch-demo
	find src tests -name __pycache__ -type d -prune -exec rm -rf {} +
	find src -maxdepth 1 -name '*.egg-info' -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
