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
