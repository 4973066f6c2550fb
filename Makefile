# Quick start: `make run` (set up and run the main job), `make test` (set up and run the checks).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-fast lint run clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install when the project metadata changes; pip takes torch from local wheels where the machine has them.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check space evaluators search tests studies
	$(BIN)/ruff format --check space evaluators search tests studies

test: lint
	$(BIN)/python -m pytest -q

test-fast: lint  # everything but the tests marked slow (over about 10 s each)
	$(BIN)/python -m pytest -q -m "not slow"

run: $(STAMP)
	$(BIN)/vitsearch run --budget 2GFLOPs --workers 2

clean:
	rm -rf $(VENV) .pytest_cache
