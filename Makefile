# The README's two commands:
#   make demo   the end-to-end demo on a local Apache Kafka (installs, starts the broker, runs `exchange demo`)
#   make test   the whole test suite: lint and type gates, unit tests, integration tests on a real broker
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint unit integration bench broker-up broker-down clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required (found %s); set PYTHON=python3.11" % sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

demo: install
	$(BIN)/exchange broker up
	$(BIN)/exchange demo

test: lint
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy exchange connectors

unit: install
	$(BIN)/pytest tests/unit

integration: install
	$(BIN)/pytest tests/integration

bench: install
	$(BIN)/exchange broker up
	$(BIN)/exchange bench publish
	$(BIN)/exchange bench router
	$(BIN)/exchange bench replay
	$(BIN)/exchange bench audit
	$(BIN)/exchange bench tracker

broker-up: install
	$(BIN)/exchange broker up

broker-down: install
	$(BIN)/exchange broker down

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

# The long fuzz run: every harness of tests/fuzz (envelope verifier, delivery opener, configuration loaders) for
# its share of FUZZ_INPUTS inputs, FUZZ_JOBS at a time, at low priority; failures go to tests/fuzz/corpus/crashes/.
FUZZ_INPUTS ?= 1000000
FUZZ_SECONDS ?= 5400
FUZZ_JOBS ?= 2

.PHONY: fuzz
fuzz: install
	nice -n 19 $(BIN)/python -m tests.fuzz run --inputs $(FUZZ_INPUTS) --seconds $(FUZZ_SECONDS) --jobs $(FUZZ_JOBS)

# Deployment artefacts (deploy/compose, deploy/kubernetes, deploy/grafana, deploy/prometheus; docs/operations.md):
#   make deploy-generate   regenerate deploy/kubernetes/*.yaml and the Grafana dashboard from their sources
#   make check-deploy      validate every artefact; installs its tools once into ~/.cache/exchange/deploy-tools
.PHONY: deploy-generate deploy-tools check-deploy

deploy-generate: install
	$(BIN)/python -m exchange.deploy generate

deploy-tools: install
	$(BIN)/python deploy/check/tools.py install

check-deploy: deploy-tools
	$(BIN)/python deploy/check/check.py
