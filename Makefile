# The two commands a user needs (see README.md):
#   make demo   set up the environment if needed, then run the demo end to end
#   make test   set up the environment if needed, then run the whole test suite and the linter
# Both re-use .venv when it is already up to date with the requirements.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.osteoseg-installed
DEMO_OUT ?= demo-output
# The workplace keeps the CPU torch wheel in /opt/wheels; elsewhere pip finds torch on its index.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels)

.PHONY: demo test lint env clean mutation

env: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(FIND_LINKS) -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/osteoseg demo --out $(DEMO_OUT) --force

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

# Mutation testing of the core (docs/development.md); not part of `make test`: over an hour for every module.
mutation: $(STAMP)
	$(BIN)/python Testing/mutation.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache build/mutation
