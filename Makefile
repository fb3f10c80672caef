# ReactLab. Every target builds the environment it needs first:
#   .venv is created from requirements.lock when it is missing or the lock has changed,
#   and reactlib is installed into it in editable mode.
#
#   make run [PROFILE=ci|lab|full] [ONLY="00 03"]
#                                    execute the suite headlessly into runs/<profile>/
#   make test                        ruff, unit tests, then every notebook under nbval (ci profile)
#   make lab                         JupyterLab on notebooks/
#   make full                        make run PROFILE=full (a GPU is expected)
#   make strip                       strip notebook outputs except golden cells
#   make golden                      re-execute notebooks under ci and strip (refresh golden cells)
#   make student                     student copies (solution cells emptied) in build/student/
#   make lock                        re-resolve requirements.lock from pyproject.toml
#   make clean                       remove runs/ and build/ (keeps .venv)

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
PROFILE ?= ci
ONLY ?=
VENV := .venv
PY := $(VENV)/bin/python
LOCK_HASH := $(shell sha256sum requirements.lock | cut -c1-16)
LOCK_STAMP := $(VENV)/.lock-$(LOCK_HASH)
READY := $(VENV)/.ready
NBVAL_RUNS := build/nbval-runs

.PHONY: help run test lint unit nbval lab full strip golden student lock clean

help:
	@sed -n '1,/^$$/{s/^# \{0,1\}//;p;}' Makefile

# A new or changed lock rebuilds .venv from scratch, so it holds exactly the lock.
$(LOCK_STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "ReactLab needs Python 3.11; set PYTHON=/path/to/python3.11")'
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-input -r requirements.lock
	touch $@

$(READY): $(LOCK_STAMP) pyproject.toml
	$(PY) -m pip install --quiet --no-input --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $@

run: $(READY)
	$(PY) -m reactlib run --profile $(PROFILE) $(if $(ONLY),--only $(ONLY))

full:
	$(MAKE) run PROFILE=full

lint: $(READY)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

unit: $(READY)
	REACTLIB_PROFILE=ci $(PY) -m pytest -p no:nbval -p no:cacheprovider tests

# Serial on purpose: pytest-xdist would split one notebook's cells across workers.
nbval: $(READY)
	rm -rf $(NBVAL_RUNS)
	REACTLIB_PROFILE=ci REACTLIB_RUNS_DIR=$(NBVAL_RUNS) $(PY) -m pytest -p no:cacheprovider \
	  --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg \
	  --nbval-cell-timeout 600 notebooks

test: lint unit nbval

lab: $(READY)
	$(PY) -m jupyter lab notebooks

strip: $(READY)
	$(PY) -m reactlib strip

golden: $(READY)
	$(PY) -m reactlib golden $(if $(ONLY),--only $(ONLY))

student: $(READY)
	$(PY) -m reactlib student --out build/student

lock:
	rm -rf build/lock-venv
	$(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/pip install --quiet --no-input -e '.[dev]'
	{ echo '# Exact pins from a real resolve of `pip install -e .[dev]` with Python 3.11 on a 2-core CPU machine.'; \
	  echo '# Regenerate with `make lock`. torch stays at 2.13.0 (the CPU wheel; newer torch pulls CUDA).'; \
	  build/lock-venv/bin/pip freeze --all --exclude-editable | grep -v -E '^pip==' | sed -E 's/^torch==([0-9.]+)\+cpu$$/torch==\1/'; \
	} > requirements.lock
	rm -rf build/lock-venv

clean:
	rm -rf runs build
