# Two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: run test lint typecheck webcheck migrate bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,mysql,redis,s3,bench]'
	touch $@ $(STAMP_RUN)

run: $(STAMP_RUN)
	$(BIN)/tidings serve

migrate: $(STAMP_RUN)
	$(BIN)/tidings migrate

lint: $(STAMP_DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .  # README.md's Python example too
	$(BIN)/lint-imports

typecheck: $(STAMP_DEV)
	$(BIN)/mypy

test: $(STAMP_DEV) lint typecheck webcheck
	$(BIN)/python -m pytest --durations=30  # the slowest, for whoever speeds the suite up

# The web client's pure modules under node --test, and every module type-checked
# from its JSDoc by TypeScript (fetched by npx, pinned; nothing is built).
webcheck:
	node --test tests/web/
	npx --yes -p typescript@5.7.3 tsc -p tsconfig.json

# The wire tests against the oldest and newest aiohttp pyproject.toml allows.
.PHONY: wire-matrix
wire-matrix: $(STAMP_DEV)
	.ci/aiohttp-matrix

# The benchmarks of docs/benchmarks.md: a spawned server pinned to CPU 0, the load
# on CPU 1. Pass more with BENCH_ARGS, e.g. make bench BENCH_ARGS="private --repeat 3".
BENCH_ARGS ?= --repeat 3 --connections 10000,19000
bench: $(STAMP_DEV)
	$(BIN)/tidings bench --spawn $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
