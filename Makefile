# Quick start: `make run` (set up and run the main job), `make test` (set up and run the checks, docs included).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: test test-fast lint docs run clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install when the project metadata changes; pip takes torch from local wheels where the machine has them.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The site's tools only where the site is built: `make run` does not wait for them.
$(DOCS_STAMP): pyproject.toml | $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,docs]'
	touch $(DOCS_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check space evaluators search tests studies
	$(BIN)/ruff format --check space evaluators search tests studies

# The documentation site, built strictly: a broken link, anchor or API reference fails (build/ is ignored).
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir build/site

test: lint docs  # the slowest tests are listed at the end, to keep the slow marker true
	$(BIN)/python -m pytest -q --durations=25

test-fast: lint docs  # everything but the tests marked slow (over about 10 s each)
	$(BIN)/python -m pytest -q -m "not slow"

run: $(STAMP)
	$(BIN)/vitsearch run --budget 2GFLOPs --workers 2

clean:
	rm -rf $(VENV) .pytest_cache build/site build/docs_src
