# The two commands a newcomer needs: `make lab` (local home + peers with Spillover) and
# `make test` (the whole suite: lint, types, unit, and e2e against the real lab).
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE ?= ghcr.io/spillover/spillover:$(VERSION)
MODE ?= own-scheduler

.PHONY: install lab lab-down test unit e2e lint bench image image-check

install:
	$(PIP) install --quiet --disable-pip-version-check -e '.[dev]'

lab: install
	hack/lab/up
	hack/demo/up --mode $(MODE)

lab-down:
	hack/lab/down

lint: install
	$(PYTHON) -m ruff check extender tests hack
	$(PYTHON) -m mypy
	lint-imports

unit: install
	$(PYTHON) -m pytest tests/unit -q

e2e: install
	hack/ci/install-browser
	$(PYTHON) -m pytest tests/e2e -q

test: install
	hack/need shellcheck shellcheck
	hack/lab/build
	hack/ci/install-browser
	$(PYTHON) -m ruff check extender tests hack
	$(PYTHON) -m mypy
	lint-imports
	$(PYTHON) -m pytest -q -ra

# Every benchmark in its quick mode (hack/bench/run_all.py); LAB=1 adds the ones that start a lab.
bench: install
	$(PYTHON) hack/bench/run_all.py $(if $(LAB),--lab)

# The container image (buildah, no Docker; installs buildah and mmdebstrap if missing), and its
# smoke test (CI runs both: .ci/run).
image:
	hack/image/build --image $(IMAGE)

image-check: image
	hack/image/check --image $(IMAGE)
