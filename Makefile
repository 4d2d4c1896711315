# TraceHub: two set-up commands on a fresh machine, `make demo` and `make test`.
# Everything else here is what those two are made of.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STACK := network/stack.sh

.PHONY: help deps system-deps python-deps web-deps binaries up down up-ha down-ha status demo test test-ha test-security unit lint bench bench-ha bench-web-compare bench-compare bench-trace bench-telegraf bench-flat clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

deps: system-deps python-deps web-deps binaries  ## install everything the stack and tests need

system-deps:
	@bash scripts/install-system-deps.sh

python-deps: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "deps: $(PYTHON) not found" >&2; exit 1; }
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	@echo "deps: installing Python packages into $(VENV)"
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $@

# The buyer page's JavaScript libraries (X.509 and CRL parsing), exactly as web/package-lock.json
# pins them, copied into api/static/vendor/ (not in git).
web-deps: api/static/vendor/x509.js
api/static/vendor/x509.js: web/package.json web/package-lock.json web/build.mjs
	@command -v npm >/dev/null || { echo "deps: npm not found (scripts/install-system-deps.sh)" >&2; exit 1; }
	@echo "deps: installing the page's JavaScript libraries (web/package-lock.json)"
	@cd web && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@cd web && npm run -s build

binaries:  ## build Fabric (peer, orderer, configtxgen, osnadmin, cryptogen), Kubo, stripe-mock and Prometheus (with promtool) with go install
	@bash network/build.sh

up: deps  ## start the whole local stack (idempotent) and print what runs where; TRACEHUB_TOPOLOGY=ha: the replicated one
	@bash $(STACK) up

down:  ## stop the local stack; its data stays in .run/
	@bash $(STACK) down

status:  ## show each component, its pid, health and endpoint
	@bash $(STACK) status

demo: up  ## bring the stack up, run a smoke transaction, then the full scenario (ending with a recall); prints the QR and trace page URLs
	@$(PY) -m demo.smoke
	@$(PY) -m demo.scenario

lint: python-deps  ## ruff, mypy and the import layering contracts (pyproject.toml)
	@$(VENV)/bin/lint-imports
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check .
	@$(PY) -m mypy

unit: python-deps  ## tests that need no services
	@$(PY) -m pytest -m 'not integration'

test: lint up  ## the whole suite against the real stack (brings it up first), then the replicated stack's kill tests
	@$(PY) -m pytest
	@$(MAKE) --no-print-directory test-ha

# The replicated stack (three Raft orderers, two Org1 peers, two Kubo nodes, and the rest) in its
# own run dir and with every port moved by HA_PORT_OFFSET, beside the everyday stack.
HA_RUN ?= $(CURDIR)/.run-ha
HA_PORT_OFFSET ?= 13000
HA_ENV := TRACEHUB_RUN=$(HA_RUN) TRACEHUB_TOPOLOGY=ha TRACEHUB_PORT_OFFSET=$(HA_PORT_OFFSET)
up-ha: deps  ## the replicated stack beside the everyday one (.run-ha, ports +HA_PORT_OFFSET)
	@$(HA_ENV) bash $(STACK) up

down-ha:  ## stop the replicated stack; its data stays in .run-ha/
	@$(HA_ENV) bash $(STACK) down

# Fresh each time, stopped afterwards, whatever the tests say.
test-ha: python-deps  ## kill tests on a fresh replicated stack during a steady ingest: Raft leader, a Kubo node, a gateway, the hub broker (60 s), the PostgreSQL primary (failed over)
	@$(HA_ENV) bash $(STACK) down >/dev/null
	@rm -rf "$(HA_RUN)"
	@$(HA_ENV) bash $(STACK) up && $(HA_ENV) $(PY) -m pytest tests/ha -s -p no:cacheprovider; rc=$$?; \
	  $(HA_ENV) bash $(STACK) down; exit $$rc

test-security: up  ## the red-team suite alone (tests/security/): each finding replayed as an attack
	@$(PY) -m pytest tests/security

# The ingest bench runs Telegraf beside the pipeline (its part t): built first (a few minutes cold).
bench: up  ## benchmarks (bench/) against the real stack; results in bench/results/
	@network/build-telegraf.sh
	@$(PY) -m bench.envelope_bench
	@$(PY) -m bench.edge_bench
	@$(PY) -m bench.store_bench --keys 2000000
	@$(PY) -m bench.ingest_bench
	@$(PY) -m bench.orders_bench
	@$(PY) -m bench.alert_bench
	@$(PY) -m bench.web_bench
	@$(PY) -m bench.epcis_subscription_bench

# The ha stack is left running, as `make bench` leaves the everyday one (`make down-ha`).
BENCH_HA_ARGS ?= --devices 20 --readings 1500 --rates 1500 --skip t
bench-ha: up up-ha  ## the ingest bench on the everyday stack, then the replicated one (same arguments): the ratio
	@$(PY) -m bench.ha_compare --ha-run "$(HA_RUN)" --ha-port-offset $(HA_PORT_OFFSET) -- $(BENCH_HA_ARGS)

# BASELINE: another checkout (e.g. `git worktree add /tmp/base <commit>`) with a .venv link.
bench-web-compare: up  ## web bench A/B against BASELINE=<checkout>, alternating rounds in one run
	@test -n "$(BASELINE)" || { echo "usage: make bench-web-compare BASELINE=<checkout>"; exit 2; }
	@$(PY) -m bench.web_compare --baseline "$(BASELINE)"

bench-compare:  ## orders or ingest bench A/B against BASELINE=<checkout>, alternating runs: BENCH=orders (needs make up) or BENCH=ingest (needs make down: each side on its own stack)
	@test -n "$(BASELINE)" -a -n "$(BENCH)" || { echo "usage: make bench-compare BENCH=orders|ingest BASELINE=<checkout>"; exit 2; }
	@$(PY) -m bench.baseline_compare "$(BENCH)" --baseline "$(BASELINE)"

bench-trace: up  ## trace, recall and FSMA export over a 1,000,000-event generated chain (own database)
	@$(PY) -m bench.trace_bench

# The gateways and Telegraf only (make bench's ingest bench has both, with the limits);
# `python -m bench.telegraf_bench --profile` adds py-spy on the gateways.
bench-telegraf: up  ## TraceHub's gateways and Telegraf on the same signed messages, one run
	@network/build-telegraf.sh
	@$(PY) -m bench.telegraf_bench

# About 15 minutes: a million readings go through the gateways between the two measurements.
bench-flat: up  ## ingest measured, 1,000,000 readings stored through the gateways, measured again
	@$(PY) -m bench.ingest_flat

clean: down  ## stop the stack and delete its data and generated keys
	rm -rf .run
