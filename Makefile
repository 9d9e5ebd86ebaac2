# Soma: every target sets up .venv first when needed. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_AREAS := protocol firmware sim host sanctuary sensing

.PHONY: setup test lint typecheck codegen codegen-check demo bench $(addprefix bench-,$(BENCH_AREAS)) fuzz clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Soma needs Python 3.11 (found %d.%d)" % sys.version_info[:2])'
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

codegen: setup
	$(BIN)/python -m soma_protocol.codegen

codegen-check: setup
	$(BIN)/python -m soma_protocol.codegen --check

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright -p pyrightconfig.json

test: setup lint codegen-check
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-ci} $(BIN)/python -m pytest --durations=15; \
	status=$$?; if [ $$status -eq 5 ]; then echo "pytest collected no tests (exit 5): nothing failed"; status=0; fi; \
	exit $$status

demo: setup
	$(BIN)/soma demo

bench: $(addprefix bench-,$(BENCH_AREAS))

$(addprefix bench-,$(BENCH_AREAS)): bench-%: setup
	$(BIN)/python -m bench $*

fuzz: setup
	HYPOTHESIS_PROFILE=nightly $(BIN)/python -m pytest tests/test_differential.py tests/test_framing.py

clean:
	rm -rf $(VENV) bench-results .pytest_cache .hypothesis .ruff_cache
