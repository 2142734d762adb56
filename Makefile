# Every target sets up what it needs, idempotently; slow things are cached in $(PLL_DEV_CACHE).
SHELL := /bin/bash
VENV := .venv
export PLL_DEV_CACHE ?= $(HOME)/.cache/pulumi-lambda-layers-dev
export PYTHON := $(CURDIR)/$(VENV)/bin/python

.PHONY: setup venv docker images pulumi lint test unit demo demo-setup demo-image demo-pulumi bench bench-stack clean

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

# The demo sets up only what it uses: the python3.11 x86_64 build image (no arm64 ones, no qemu)
# and the Pulumi CLI, built at the same time (-j); each writes its log under $(PLL_DEV_CACHE)/logs.
# The demo's CLI is the quick build (pulumi-cli.sh --quick: unoptimised, 3.5 min of compile
# instead of 6); `make pulumi` (and so `make test`) builds the optimised one the tests run.
demo:
	@$(MAKE) --no-print-directory -j3 demo-setup
	bash scripts/demo.sh

demo-setup: venv demo-image demo-pulumi

# Not the `docker` target: run directly, ensure-docker.sh sets up arm64 emulation too, which
# build-images.sh does only for arm64 images (it starts the Docker engine itself).
demo-image:
	bash scripts/build-images.sh python3.11:x86_64

# The CLI's version is the `pulumi` SDK's. On a fresh machine (no $(VENV) yet) the CLI build does not
# wait for the whole venv (pulumi-aws alone is 270 MB): a throwaway venv with only the SDK, at
# pyproject's requirement, tells the version. demo.sh asks scripts/pulumi-cli.sh again with $(VENV),
# which finds that build cached (or builds the venv's version, should the two ever differ).
ifeq ($(wildcard $(VENV)/bin/python),)
DEMO_SDK_VENV := $(PLL_DEV_CACHE)/demo-sdk-venv
demo-pulumi: DEMO_PY = $(DEMO_SDK_VENV)/bin/python
else
demo-pulumi: venv
demo-pulumi: DEMO_PY = $(PYTHON)
endif
# Quiet while it builds (Go's output would interleave with the image build's): log, then a summary.
demo-pulumi:
	@mkdir -p $(PLL_DEV_CACHE)/logs
	@echo "pulumi  CLI for the SDK in $(or $(DEMO_SDK_VENV),$(VENV)) (log: $(PLL_DEV_CACHE)/logs/pulumi-cli.log)"
	@if [ -n "$(DEMO_SDK_VENV)" ]; then \
	  req=$$(python3 -c 'import re, tomllib; print(next(r for r in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"] if re.match(r"pulumi\b(?!-)", r)))') \
	  && rm -rf $(DEMO_SDK_VENV) && python3 -m venv $(DEMO_SDK_VENV) && $(DEMO_SDK_VENV)/bin/pip install -q "$$req"; fi
	@start=$$SECONDS; PYTHON=$(DEMO_PY) bash scripts/pulumi-cli.sh --quick >$(PLL_DEV_CACHE)/logs/pulumi-cli.log 2>&1 \
	  || { echo "FAILED  pulumi CLI; tail of $(PLL_DEV_CACHE)/logs/pulumi-cli.log:" >&2; \
	       tail -n 30 $(PLL_DEV_CACHE)/logs/pulumi-cli.log | sed 's/^/    /' >&2; exit 1; }; \
	  echo "ok      pulumi CLI in $$(tail -n 1 $(PLL_DEV_CACHE)/logs/pulumi-cli.log) ($$((SECONDS - start)) s)"
	@if [ -n "$(DEMO_SDK_VENV)" ]; then rm -rf $(DEMO_SDK_VENV); fi

bench: setup
	$(VENV)/bin/python bench/build_speed.py

bench-stack: setup
	$(VENV)/bin/python bench/stack.py

clean:
	rm -rf $(VENV) build dist out
