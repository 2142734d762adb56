# Every target sets up what it needs, idempotently; slow things are cached in $(PLL_DEV_CACHE).
SHELL := /bin/bash
VENV := .venv
export PLL_DEV_CACHE ?= $(HOME)/.cache/pulumi-lambda-layers-dev
export PYTHON := $(CURDIR)/$(VENV)/bin/python

.PHONY: setup venv docker images pulumi lint test unit demo bench bench-stack clean

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

docker:
	bash scripts/ensure-docker.sh

images: docker
	bash scripts/build-images.sh

pulumi: venv
	bash scripts/pulumi-cli.sh

setup: venv images pulumi

# ruff and mypy --strict on the library (config in pyproject.toml); part of `make test`.
lint: venv
	$(VENV)/bin/ruff check src
	$(VENV)/bin/mypy

test: setup lint
	$(VENV)/bin/pytest

unit: venv
	$(VENV)/bin/pytest tests/unit

demo: setup
	bash scripts/demo.sh

bench: setup
	$(VENV)/bin/python bench/build_speed.py

bench-stack: setup
	$(VENV)/bin/python bench/stack.py

clean:
	rm -rf $(VENV) build dist out
