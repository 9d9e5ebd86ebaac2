# Soma: every target sets up .venv first when needed. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_AREAS := protocol firmware sim host sanctuary sensing safety

.PHONY: setup check test test-cpu lint typecheck codegen codegen-check demo bench $(addprefix bench-,$(BENCH_AREAS)) fuzz clean

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

# pyright (typecheck) over the MicroPython code (pyrightconfig.json: firmware/, host/soma/mp/,
# tests/mp/ and the shared sim models) against the ESP32 stubs, and over the host, the protocol
# and the benchmarks (pyrightconfig.host.json); then ruff over the repo.
lint: setup typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/pyright -p pyrightconfig.json
	$(BIN)/pyright -p pyrightconfig.host.json

# Three phases: the tests marked `cpu` (virtual time, codecs, hypothesis: nothing measures
# the wall clock) on every core; the tests marked `concurrent` (virtual beds in real time
# judging no timing bar: exit statuses, records, recovery) two at a time; then the rest,
# which run virtual beds in real time and judge their timing, alone. `make test` runs all
# three always; the first failure's status is the result. pytest's "no tests collected"
# (exit 5) fails `make test` when no phase collected anything (and `make check`/`test-cpu`
# when its one phase did not); a phase selecting nothing (PYTEST_ARGS='-k ...' matching only
# another's tests) is reported, not failed. PYTEST_ARGS goes to every phase:
# `make check PYTEST_ARGS='-k firmware'`.
PYTEST_ARGS ?=
# The hypothesis profile: `ci` (10 000 examples, derandomized, the fuzz floor judged) for
# `make test`; `dev` (300 examples) for `make check`; HYPOTHESIS_PROFILE overrides both.
PROFILE := ci
PYTEST = HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-$(PROFILE)} $(BIN)/python -m pytest $(PYTEST_ARGS)
# worksteal: a worker that runs out takes queued tests from the other, so the long
# virtual-time runs do not end up queued behind each other on one core.
PYTEST_CPU = $(PYTEST) -m cpu -n auto --dist worksteal --durations=15
PYTEST_CONCURRENT = $(PYTEST) -m "concurrent and not cpu" -n 2 --dist worksteal --durations=15
PYTEST_REAL = $(PYTEST) -m "not cpu and not concurrent" --durations=15
NO_TESTS := pytest collected no tests (exit 5)

# The edit loop (< 3 minutes on 2 cores): lint, codegen check, the cpu phase (dev profile).
check: PROFILE := dev
check: lint codegen-check test-cpu

test-cpu: setup
	@$(PYTEST_CPU); s=$$?; \
	if [ $$s -eq 5 ]; then echo "make $@: FAILED: $(NO_TESTS) in the cpu phase"; fi; exit $$s

test: setup lint codegen-check
	@$(PYTEST_CPU); cpu=$$?; $(PYTEST_CONCURRENT); concurrent=$$?; $(PYTEST_REAL); real=$$?; \
	if [ $$cpu -eq 5 ] && [ $$concurrent -eq 5 ] && [ $$real -eq 5 ]; then \
		echo "make test: FAILED: $(NO_TESTS) in every phase"; exit 5; fi; \
	result=0; for phase in cpu:$$cpu concurrent:$$concurrent real-time:$$real; do \
		status=$${phase#*:}; \
		if [ $$status -eq 5 ]; then echo "make test: note: the $${phase%:*} phase selected no tests"; \
		elif [ $$status -ne 0 ] && [ $$result -eq 0 ]; then result=$$status; fi; \
	done; exit $$result

demo: setup
	$(BIN)/soma demo

bench: $(addprefix bench-,$(BENCH_AREAS))

$(addprefix bench-,$(BENCH_AREAS)): bench-%: setup
	$(BIN)/python -m benchmarks $*

fuzz: setup
	HYPOTHESIS_PROFILE=nightly $(BIN)/python -m pytest tests/test_differential.py tests/test_framing.py

clean:
	rm -rf $(VENV) bench-results .pytest_cache .hypothesis .ruff_cache
