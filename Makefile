# Every target bootstraps .venv idempotently: a stamp file records that the install matching
# pyproject.toml and requirements/constraints.txt is done, so a second `make` installs nothing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.edge-kd-installed
PIP    := $(PY) -m pip install --disable-pip-version-check -q
# Tests and benchmarks must never reach a model hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: venv demo test test-unit test-integration bench arm-emu clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	# torch first, pinned: the CPU wheel lies on disk; an unpinned torch pulls a multi-GB CUDA build.
	$(PIP) torch==2.13.0
	$(PIP) -c requirements/constraints.txt -e ".[teachers,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m edge_kd.demo

test: $(STAMP)
	$(PY) -m pytest -q tests

test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

test-integration: $(STAMP)
	$(PY) -m pytest -q tests/integration

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

# The ARM64 emulation environment (edge_kd.emulate) in ~/.cache/edge_kd/arm-emu: host packages first when root.
ARM_EMU_HOST_PACKAGES := qemu-user mmdebstrap gcc g++-aarch64-linux-gnu
arm-emu: $(STAMP)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! (command -v qemu-aarch64 && command -v mmdebstrap && command -v gcc && command -v aarch64-linux-gnu-g++) >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(ARM_EMU_HOST_PACKAGES) >/dev/null; fi
	$(PY) -m edge_kd arm-emu

clean:
	rm -rf $(VENV) .pytest_cache
