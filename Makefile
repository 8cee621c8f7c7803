# Every target creates the virtualenv it needs; `make test` is what CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint unit suite bench fuzz clean

# The modules setup.py compiles: installed again (and so compiled again) whenever one changes, for a
# compiled module left older than its source would shadow it.
HOT_PATH := $(shell grep -o '"kubedns_py/[^"]*\.py"' setup.py | tr -d '"')

$(STAMP): pyproject.toml setup.py $(HOT_PATH)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/kubedns-py up

lint: $(STAMP)
	$(BIN)/ruff check kubedns_py probe tests
	$(BIN)/ruff format --check kubedns_py probe tests
	$(BIN)/mypy --strict kubedns_py probe
	$(BIN)/lint-imports

# tests/unit only: no sockets, no processes, under 30 s.
unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# Every level: unit, integration, e2e, deploy (tests/README.md).
suite: $(STAMP)
	$(BIN)/pytest -q

test: lint suite

bench: $(STAMP)
	$(BIN)/python -m tests.bench

fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz --inputs 1000000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build
	find . -name '*.so' -not -path './$(VENV)/*' -delete  # the compiled hot path
