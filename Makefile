# The two quick-start commands: `make run` (gateway on embedded defaults at http://127.0.0.1:8080)
# and `make test` (the whole suite). Both create .venv and install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --disable-pip-version-check -q
EDITABLE :=
PYTEST_ARGS ?=
LINTED := gateway channels nlp adapters grid tests bench

.PHONY: run test lint check migrate clean model

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip setuptools wheel

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(PIP) -e . $(EDITABLE)
	@touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[dev,transformer]' $(EDITABLE)
	@touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/gateway serve

test: $(VENV)/.dev-installed
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy gateway channels adapters grid nlp

# Rebuild the bundled classifier (nlp/data/model, committed) from the committed corpora.
model: $(VENV)/.run-installed
	$(BIN)/python -m nlp.bundled build

migrate: $(VENV)/.run-installed
	$(BIN)/gateway migrate

clean:
	rm -rf $(VENV) var test-output .pytest_cache
