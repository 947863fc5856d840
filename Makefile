# persist.docker — `make demo` runs the chapter on this host, `make test` is what CI runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
COLLECTION_LINK := .tmp/collections/ansible_collections/persist/docker
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)
# scripts/steps.sh sets PD_SETUP_DONE after its setup step, so that the steps after it (two of
# them at once, sometimes) do not run the set-up again.
SETUP := $(if $(PD_SETUP_DONE),,setup)

.PHONY: help setup testbed s3 venv collection demo test quick sanity-changed lint sanity unit unit-matrix sanity-newest integration molecule fleet collection-test docs bench changelog build clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: testbed venv collection s3 ## everything the demo and the tests need on this host

testbed: ## install Debian packages, start engines A and B, build the test images
	@scripts/testbed.sh

s3: venv ## start the test bed's S3 server (SeaweedFS on loopback, credentials checked)
	@scripts/testbed.sh s3

venv: $(VENV)/.installed ## the Python virtual environment with the dev tools

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

collection: ## make this checkout importable as persist.docker
	@mkdir -p $(dir $(COLLECTION_LINK))
	@ln -sfn ../../../.. $(COLLECTION_LINK)

demo: $(SETUP) ## run playbooks/demo.yml on the local engine
	$(BIN)/ansible-playbook playbooks/demo.yml

# The long steps in two lanes: the integration tests (two lanes of their own) beside the fleet, each lane then
# goes on with Molecule scenarios (they share nothing: each has its own names, directories and engines).
ROLES_LANE_A := molecule-relocate,molecule-engine
ROLES_LANE_B := fleet,molecule-backup,molecule-registry,molecule-volumes

test: ## everything CI runs, each step timed
	@for d in molecule/*/; do s=$$(basename "$$d"); case ",$(ROLES_LANE_A),$(ROLES_LANE_B)," in \
	  *",molecule-$$s,"*|*",$$s,"*) ;; *) echo "make test: scenario $$s is in neither lane" >&2; exit 1;; esac; done
	@scripts/steps.sh setup lint sanity unit-matrix sanity-newest integration,$(ROLES_LANE_A)+$(ROLES_LANE_B) collection-test

quick: venv collection ## the edit loop: lint, sanity of the changed files (one Python), unit
	@scripts/steps.sh lint sanity-changed unit

sanity-changed: venv ## ansible-test sanity of the files changed since HEAD (one Python)
	@files=$$( { git diff --name-only HEAD; git ls-files --others --exclude-standard; } | sort -u | while read -r f; do [ -f "$$f" ] && echo "$$f"; done); \
	if [ -z "$$files" ]; then echo "sanity-changed: no changed files"; else SANITY_PYTHON=3.11 scripts/sanity.sh $$files; fi

lint: venv ## ruff, yamllint, ansible-lint (production profile)
	$(BIN)/ruff check .
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --profile production --offline

sanity: venv ## ansible-test sanity, offline, every test for real
	scripts/sanity.sh

unit: venv collection ## pytest, no Docker needed
	$(BIN)/python -m pytest -q tests/unit

unit-matrix: venv collection ## the unit tests on every supported ansible-core release (2.19, 2.20, 2.21)
	scripts/unit-matrix.sh

sanity-newest: unit-matrix ## ansible-test sanity of the newest supported ansible-core (2.21, Python 3.13)
	SANITY_VENV=$(CURDIR)/.tmp/unit-core-2.21 SANITY_PYTHON=3.13 scripts/sanity.sh

integration: $(SETUP) ## ansible-test integration against the real engines
	scripts/integration.sh $(TARGETS)

molecule: $(SETUP) ## the roles' Molecule scenarios (converge, idempotence, verify) on this host
	scripts/molecule.sh $(SCENARIOS)

molecule-%: $(SETUP) ## one Molecule scenario, e.g. make molecule-relocate
	scripts/molecule.sh $*

fleet: $(SETUP) ## the roles on three Debian 12 hosts with systemd, reached over ssh (docs/fleet.md)
	scripts/molecule.sh fleet

bench: $(SETUP) ## benchmarks (not tests): figures as ratios against the plain tools
	@for b in bench/*; do if [ -f "$$b" ] && [ -x "$$b" ]; then echo "== $$b"; $(BIN)/python "$$b" $(BENCH_ARGS) || exit 1; fi; done

changelog: venv ## render CHANGELOG.md from the fragments
	$(BIN)/antsibull-changelog release

collection-test: $(SETUP) ## build the tarball, install it into a clean directory, run ansible-doc, the demo, ansible-builder
	scripts/collection-test.sh

docs: venv ## render docs/modules and docs/roles from the specs (make unit fails when they are stale)
	$(BIN)/python scripts/docs.py

build: venv ## ansible-galaxy collection build
	$(BIN)/ansible-galaxy collection build --force

clean: ## remove generated files (keeps the venv)
	rm -rf .tmp tests/output .pytest_cache .ruff_cache
