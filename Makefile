# g2d: the two commands are `make test` and `make reproduce` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

# make reproduce PROFILE=cpu DATA=/path DEVICE=cuda
PROFILE ?= smoke
DATA ?=
DEVICE ?= auto

# Tests use $G2D_DATA when set, else ../shared/data when it exists (the development copy), else no data:
# tests that need real data then skip with a message.
ifeq ($(origin G2D_DATA),undefined)
TEST_DATA := $(if $(wildcard ../shared/data/.),$(abspath ../shared/data),)
else
TEST_DATA := $(G2D_DATA)
endif

.PHONY: help install test sync nbtest pytest reproduce lab bench export clean release-arrays gpu-release trunk-arrays gpu-trunk

help:
	@echo "make test        create .venv if missing, install, check export sync, test every notebook (each in its own process), pytest"
	@echo "make reproduce   papermill batch (PROFILE=smoke|cpu|gpu DATA=/path DEVICE=auto|cpu|cuda)"
	@echo "make lab         JupyterLab on the notebooks"
	@echo "make bench       benchmarks"
	@echo "make export      nbdev_export + nbdev_clean after editing notebooks"
	@echo "make release-arrays / make gpu-release   the from-scratch G2D's GPU variant (see nbs/09b_release.ipynb)"
	@echo "make trunk-arrays / make gpu-trunk       the pretrained-trunk student's GPU variant (see nbs/09d_trunk.ipynb)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

# Reinstall when the package metadata changes.
$(VENV)/.g2d-installed: $(PY) settings.ini setup.py pyproject.toml
	$(PY) -m pip install -e '.[dev]' --config-settings editable_mode=compat
	touch $@

install: $(VENV)/.g2d-installed

# g2d/ must equal a fresh nbdev_export of nbs/, and the notebooks must be clean.
sync: install
	$(PY) -m pytest -q -p no:cacheprovider tests/test_sync.py

# Each notebook in its own process: nbdev_test's reused workers would let one notebook's state reach the next.
nbtest: install
	@echo "data root for tests: $(if $(TEST_DATA),$(TEST_DATA),none (tests that need real data skip))"
	G2D_DATA="$(TEST_DATA)" $(PY) tests/run_notebooks.py --path nbs --workers 2

pytest: install
	G2D_DATA="$(TEST_DATA)" $(PY) -m pytest -ra

test: sync nbtest pytest

reproduce: install
	$(BIN)/g2d reproduce --profile $(PROFILE) $(if $(DATA),--root "$(DATA)") --device $(DEVICE)

# JupyterLab refuses to start as root without --allow-root (a container, a cloud machine): given when root runs it.
lab: install
	$(BIN)/jupyter lab nbs $(if $(filter 0,$(shell id -u)),--allow-root)

bench: install
	G2D_DATA="$(TEST_DATA)" $(PY) benchmarks/run.py

export: install
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean

# The released model's GPU variant (nbs/09b_release.ipynb): pack the arrays here (they need the data root), carry
# them to a GPU machine (at most 60 MiB), and there run `make gpu-release OUT=DIR` (no data root, no teacher needed).
ARRAYS ?= runs/release-arrays.npz
OUT ?= runs/gpu-release
release-arrays: install
	$(BIN)/g2d release pack --out $(ARRAYS) $(if $(DATA),--root "$(DATA)")

gpu-release:
	python3 -m pip install -q --no-deps -e . && python3 -m g2d.cli release gpu-run --arrays $(ARRAYS) --out $(OUT)

clean:
	rm -rf runs build dist *.egg-info .pytest_cache

# The pretrained-trunk student's GPU variant (nbs/09d_trunk.ipynb): pack its 112 px faces here (they need the data
# root), carry them to a GPU machine (at most 62 MiB), and there run `make gpu-trunk TRUNK_OUT=DIR`.
TRUNK_ARRAYS ?= runs/trunk-arrays.npz
TRUNK_OUT ?= runs/gpu-trunk
trunk-arrays: install
	$(BIN)/g2d trunk pack --out $(TRUNK_ARRAYS) $(if $(DATA),--root "$(DATA)")

gpu-trunk:
	python3 -m pip install -q --no-deps -e . && python3 -m g2d.cli trunk gpu-run --arrays $(TRUNK_ARRAYS) --out $(TRUNK_OUT)
