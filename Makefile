# The only entry points. `make test` on a fresh clone installs what it needs by itself.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(abspath $(VENV))/bin
PY := $(BIN)/python
# The layer's Makefile (run by sam build) must find the venv's python3/pip first.
export PATH := $(BIN):$(PATH)
# aws-sam-cli pins boto3 (boto3[crt]==) to a release behind the project's and the layer's: it runs
# from a venv of its own, made from its own lock (requirements-sam.txt). The tests that run sam
# (tests/template, tests/integration) find it by HANDOFF_SAM.
SAM_VENV ?= .venv-sam
export HANDOFF_SAM := $(abspath $(SAM_VENV))/bin/sam
SAM := $(HANDOFF_SAM)
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1
ENV ?= default
STACK ?= $(if $(filter prod,$(ENV)),handoff-prod,handoff)

.PHONY: help install test unit integration lint audit build deploy preflight redrive replay openapi local demo bench clean lock

help:
	@echo "make demo      the whole flow on the local stack, with faults, in about a minute"
	@echo "make local     run the local stack until Ctrl-C (no Docker, no AWS account; BY_HAND=1: you send the callbacks;"
	@echo "               SAM_LOCAL=1: for sam local invoke/start-api --env-vars .sam-local-env.json)"
	@echo "make bench     print the benchmark figures (never part of make test)"
	@echo "make install   create $(VENV) from the pinned requirements.txt, and $(VENV)/bin/handoff (the operator CLI)"
	@echo "make test      lint + template checks + all tests (what CI runs)"
	@echo "make lint      ruff, mypy, cfn-lint, sam validate --lint, checkov, bandit"
	@echo "make audit     pip-audit every lock against a vulnerability database (needs the internet; not in make test)"
	@echo "make build     sam build (layer for python3.13/arm64)"
	@echo "make deploy    sam deploy (ENV=prod for the prod environment in samconfig.toml)"
	@echo "make preflight check every vendor's configuration against the vendor (STACK=..., STACK=local)"
	@echo "make redrive   move dead-lettered submissions back to the queue (STACK=..., STACK=local, RATE=msgs/s)"
	@echo "make replay    re-apply an archived callback (KEY=raw/<vendor>/..., STACK=..., STACK=local)"
	@echo "make openapi   regenerate openapi.json from the functions' models"
	@echo "make clean     remove build and cache folders"

install: $(VENV)/.installed $(BIN)/handoff

$(SAM_VENV)/.installed: requirements-sam.txt
	python3 -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-sam.txt
	touch $@

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# The operator CLI's launcher (ops/launcher.py): runs this checkout's ops/cli.py from any directory.
# A target of its own, so that it is written on a venv installed before it existed too.
$(BIN)/handoff: $(VENV)/.installed ops/launcher.py
	@$(PY) -m ops.launcher $@

# Test files run side by side (pytest-xdist): each file whole on one worker (its stack started once),
# the longest first (tests/conftest.py LONGEST_FIRST), so that the workers end together. Three
# workers on two cores: many integration tests spend their time waiting (a vendor's pace, a lease,
# a poll), and with two workers the cores were idle a fifth of the run (measured: 81% busy; 96% with three).
WORKERS ?= 3
PYTEST := $(PY) -m pytest -n $(WORKERS) --dist loadfile --no-loadscope-reorder

test: lint
	$(PYTEST)

unit: install
	$(PYTEST) tests/unit

integration: install $(SAM_VENV)/.installed
	$(PYTEST) tests/integration

# BY_HAND=1: jobs wait for you (no vendor sandbox calls back, the reconciler leaves them alone for
# an hour), so the callbacks you send are not duplicates; NO_CALLBACKS=1 and RECONCILE_AFTER=N alone.
# SAM_LOCAL=1: for `sam local invoke/start-api --env-vars .sam-local-env.json` (README "sam local"):
# moto and the sandboxes served at docker0's address too, the events/ samples' jobs and keys held
# (the reconciler leaves them alone for an hour, so the callback samples are applied, not
# duplicates), the env-vars file written. SAM_LOCAL=ADDRESS: another address containers reach.
RECONCILE_AFTER ?= $(if $(or $(BY_HAND),$(SAM_LOCAL)),3600)
local: install
	$(PY) -m local.stack $(if $(FAULTS),--faults) $(if $(BASE_PATH),--base-path $(call quote,$(BASE_PATH))) \
	  $(if $(SAM_LOCAL),--for-containers $(if $(filter 1,$(SAM_LOCAL)),,$(call quote,$(SAM_LOCAL)))) \
	  $(if $(or $(BY_HAND),$(NO_CALLBACKS)),--no-vendor-callbacks) $(if $(RECONCILE_AFTER),--reconcile-after $(call quote,$(RECONCILE_AFTER))) \
	  $(foreach o,$(OPTIONS),--option $(call quote,$(o)))

demo: install
	$(PY) -m local.demo $(foreach o,$(OPTIONS),--option $(o))

bench: install $(SAM_VENV)/.installed
	$(PY) -m bench

# checkov pins boto3 (and packaging) to versions this project cannot run with: it gets a venv of its
# own, from its own lock (requirements-checkov.txt). Its skipped checks, each with its reason: .checkov.yaml.
# bandit (medium severity and up) ignores `# nosec` and ruff's `# noqa`: it has no skips.
SCAN_VENV ?= .venv-checkov
$(SCAN_VENV)/.installed: requirements-checkov.txt
	python3 -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

lint: install $(SAM_VENV)/.installed $(SCAN_VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint --region $(AWS_DEFAULT_REGION)
	$(abspath $(SCAN_VENV))/bin/checkov --config-file .checkov.yaml
	$(BIN)/bandit --quiet --recursive shared/handoff functions --severity-level medium --ignore-nosec

build: install $(SAM_VENV)/.installed
	$(SAM) build --config-env $(ENV)

deploy: build
	$(SAM) deploy --config-env $(ENV) $(if $(GUIDED),--guided)

# Known vulnerabilities in every pinned dependency: the dev/test venv, the layer (resolved as its
# build resolves it) and the tools' venvs. --strict: a package the database cannot be asked about
# (no network, an advisory service down) fails the audit instead of being skipped in silence. It
# needs the internet (PyPI's JSON API, or osv.dev with AUDIT_SERVICE=osv): not part of make test.
AUDIT_SERVICE ?= pypi
AUDIT := $(BIN)/pip-audit --strict --progress-spinner off --vulnerability-service $(AUDIT_SERVICE)
AUDIT_FAILED = { echo "make audit FAILED: a known vulnerability (above), or the vulnerability database could" \
  "not be asked about a package ('could not be audited', 'Could not connect', a connection error): then" \
  "nothing is known to be safe. Run it where PyPI's JSON API or osv.dev answers (README: Dependencies)." >&2; exit 1; }
audit: install
	@echo "pip-audit --strict: requirements.txt, requirements-sam.txt, requirements-checkov.txt (pinned, --no-deps)"
	@$(AUDIT) --no-deps --disable-pip --requirement requirements.txt \
	  --requirement requirements-sam.txt --requirement requirements-checkov.txt || $(AUDIT_FAILED)
	@echo "pip-audit --strict: shared/requirements.txt (the layer, resolved as its build resolves it)"
	@$(AUDIT) --requirement shared/requirements.txt || $(AUDIT_FAILED)

# Every lock from its own fresh venv: requirements.txt from requirements.in; the tools' locks
# (their first two lines, the header, kept) from the tool alone.
define lock_tool
python3 -m venv .lock-venv && .lock-venv/bin/pip install --quiet --disable-pip-version-check $(2) && \
  { sed -n '1,2p' $(1); .lock-venv/bin/pip freeze; } > $(1).new && mv $(1).new $(1) && rm -rf .lock-venv
endef
lock:
	rm -rf .lock-venv
	python3 -m venv .lock-venv && .lock-venv/bin/pip install --quiet --disable-pip-version-check -r requirements.in && \
	  .lock-venv/bin/pip freeze > requirements.txt && rm -rf .lock-venv
	$(call lock_tool,requirements-sam.txt,aws-sam-cli)
	$(call lock_tool,requirements-checkov.txt,checkov)

openapi: install
	$(PY) -m ops.openapi

# Operator tools. No STACK (nor ENV) given: the local stack if `make local` is running, else the
# stack `handoff`; STACK=local is the local stack (an error if none runs).
OPS_STACK := $(if $(filter-out file,$(origin STACK)),$(STACK),$(if $(filter-out default,$(ENV)),$(STACK)))
# A value as one shell word, whatever it holds (spaces, !, quotes): the tool judges it, not the shell.
quote = '$(subst ','\'',$(1))'
# Each runs the operator CLI, `handoff <command>` (which runs ops/<command>.py), as the launcher
# runs it: `python -m ops.cli` in this checkout (they need the venv, not the launcher file). make
# ends with its own exit code 2 whenever a recipe fails; the tools' own codes (preflight: 1 a check
# FAILED, 2 it could not run) are those of `handoff <command>`, which README documents.
HANDOFF = $(PY) -m ops.cli $(if $(OPS_STACK),--stack $(call quote,$(OPS_STACK)))
preflight: $(VENV)/.installed
	@$(HANDOFF) preflight

redrive: $(VENV)/.installed
	@$(HANDOFF) redrive $(if $(RATE),--rate $(call quote,$(RATE)))

replay: $(VENV)/.installed
	@test -n $(call quote,$(KEY)) || { echo "usage: make replay KEY=raw/<vendor>/... [STACK=...|STACK=local]"; exit 2; }
	@$(HANDOFF) replay -- $(call quote,$(KEY))

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -not -path "./$(VENV)/*" -exec rm -rf {} +
