# Two commands set everything up on a fresh machine:
#   make demo   - install, then run the main job end to end on the generated demo data
#   make test   - install, then run the test suite (all but the slow tests)
#   make test-all - the same, with the slow tests (the many-kill loops)
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: setup demo test test-all bench gpu-check clean

$(STAMP): pyproject.toml
	@# open3d needs libusb at import time
	@if command -v apt-get >/dev/null && ! ldconfig -p | grep -q libusb-1.0.so.0; then \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq libusb-1.0-0; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[test,ray]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/mmtok demo demo

test: setup
	$(BIN)/python -m pytest -q

# the default run skips tests marked slow (pyproject's addopts); the last -m wins
test-all: setup
	$(BIN)/python -m pytest -q -m "slow or not slow"

# Every benchmarks/bench_*.py (found by name), one Markdown report: benchmarks/results/ and,
# published, docs/benchmarks.md. `make bench BENCH_ARGS=--quick` for small sizes.
bench: setup
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/report.py --publish $(BENCH_ARGS)

# On a GPU machine (no network needed): the tests marked gpu and the benchmarks' GPU
# sections in one call of under 8 minutes, one report (benchmarks/README.md, "The GPU check").
# `make gpu-check GPU_CHECK_ARGS=--quick` for smaller sizes.
gpu-check:
	bash benchmarks/gpu_check.sh $(GPU_CHECK_ARGS)

clean:
	rm -rf demo .pytest_cache
