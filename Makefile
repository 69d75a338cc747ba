# Arco's single entry point. Quick start on a fresh clone: `make demo`, then `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.arco-installed

.PHONY: install explorer demo dev test test-unit test-integration lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@echo "First run: creating $(VENV) and installing Arco with its dependencies and the Temporal dev server."
	@echo "This downloads a few hundred MB and takes a few minutes; pip shows its progress below. Later runs skip it."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e '.[dev,s3]'
	@if command -v npm >/dev/null 2>&1; then $(MAKE) explorer; \
	else echo "npm not found: skipping the explorer page (install Node.js 20 and npm, then run make explorer)."; fi
	touch $(STAMP)
	@echo "Installed into $(VENV)."

## The catalog explorer page: bundles explorer/ (pinned npm packages, DuckDB-WASM vendored) into
## src/arco/api/static/explorer/, which `arco serve` serves at /.
explorer:
	npm ci --prefix explorer --no-audit --no-fund
	npm run --prefix explorer build

## Start a fresh embedded stack, run Arco's main job once, print the outcome.
demo: install
	$(BIN)/arco demo

## The embedded stack for development (Temporal dev server + UI, worker, local catalog); Ctrl-C stops it.
dev: install
	$(BIN)/arco dev

## The whole suite: unit tests and integration tests against the real Temporal dev server and fake-gcs-server.
test: install
	$(BIN)/python -m pytest

test-unit: install
	$(BIN)/python -m pytest -m "not integration"

test-integration: install
	$(BIN)/python -m pytest -m integration

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Every benchmark in quick mode (see docs/benchmarks.md for the full runs).
bench: install
	for script in benchmarks/*.py; do $(BIN)/python $$script --quick || exit 1; done

clean:
	rm -rf $(VENV) .arco .pytest_cache .mypy_cache .ruff_cache .hypothesis explorer/node_modules src/arco/api/static/explorer
