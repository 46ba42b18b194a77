# fedchain — two commands do everything: `make demo` and `make test`.
# Every target is idempotent: it installs only what is missing or out of date.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .setup-stamps
DEBIAN_PACKAGES := dataset-fashion-mnist iproute2 systemd curl

.PHONY: setup demo test lint contracts bench-deps clean

setup: $(STAMPS)/debian $(STAMPS)/venv $(STAMPS)/npm
	@echo "setup: done (venv: $(VENV), npm tools: node_modules, data: /usr/share/datasets/fashion-mnist)"

$(STAMPS)/debian: Makefile
	@mkdir -p $(STAMPS)
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "setup: Debian packages present ($(DEBIAN_PACKAGES))"; fi
	@touch $@

$(STAMPS)/venv: pyproject.toml
	@mkdir -p $(STAMPS)
	@test -x $(PY) || { echo "setup: creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "setup: installing fedchain with dev extras into $(VENV)"
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $@

$(STAMPS)/npm: package.json package-lock.json
	@mkdir -p $(STAMPS)
	@echo "setup: npm ci (anvil, solc, node 22, helia)"
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

contracts: $(STAMPS)/npm
	@echo "contracts: compiling contracts/FederatedRounds.sol with the pinned solcjs"
	@node scripts/compile_contract.mjs

bench-deps: setup
	@echo "bench-deps: installing the benchmark extra (CPU PyTorch baseline)"
	@$(PY) -m pip install -q -e '.[dev,bench]'

demo: setup
	@$(VENV)/bin/fedchain testnet up --clients 4 --rounds 5 --model 2nn --partition iid --epochs 5 --batch-size 32 --learning-rate 0.1 --ewc-lambda 5 --run-dir runs/demo

test: setup
	@$(VENV)/bin/pytest -q

lint: setup
	@$(VENV)/bin/ruff check daemons contracts models tests benchmarks examples
	@$(VENV)/bin/ruff format --check daemons contracts models tests benchmarks examples
	@$(VENV)/bin/mypy

clean:
	rm -rf $(STAMPS) build *.egg-info
