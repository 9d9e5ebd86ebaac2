# Soma: every target sets up .venv first when needed. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_AREAS := protocol firmware sim host sanctuary sensing safety

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

# Two phases: the tests marked `cpu` (virtual time, codecs, hypothesis: nothing measures the
# wall clock) on every core, then the rest, which run virtual beds in real time and measure
# their timing, alone. Both always run; the first failure's status is the result. pytest's
# "no tests collected" (exit 5) is not a failure.
PYTEST := HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-ci} $(BIN)/python -m pytest
NO_TESTS_OK := if [ $$s -eq 5 ]; then echo "pytest collected no tests (exit 5): nothing failed"; s=0; fi

test: setup lint codegen-check
	@$(PYTEST) -m cpu -n auto --durations=10; s=$$?; $(NO_TESTS_OK); first=$$s; \
	$(PYTEST) -m "not cpu" --durations=15; s=$$?; $(NO_TESTS_OK); \
	if [ $$first -ne 0 ]; then exit $$first; fi; exit $$s

demo: setup
	$(BIN)/soma demo

bench: $(addprefix bench-,$(BENCH_AREAS))

$(addprefix bench-,$(BENCH_AREAS)): bench-%: setup
	$(BIN)/python -m bench $*

fuzz: setup
	HYPOTHESIS_PROFILE=nightly $(BIN)/python -m pytest tests/test_differential.py tests/test_framing.py

clean:
	rm -rf $(VENV) bench-results .pytest_cache .hypothesis .ruff_cache
