"""Shared fixtures: hypothesis profiles and one long-lived MicroPython codec service."""

import atexit
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from fuzzcount import CASES, FLOOR
from soma.mpcodec import FirmwareCodec

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "firmware"))  # firmware modules also import under CPython...
sys.modules.setdefault("micropython", types.SimpleNamespace(const=int))  # ...with const() as the identity
# Traceability records of this run (soma subprocesses inherit it): never the user's database.
_DB_DIR = tempfile.mkdtemp(prefix="soma-test-db-")
atexit.register(shutil.rmtree, _DB_DIR, ignore_errors=True)
os.environ["SOMA_DB"] = os.path.join(_DB_DIR, "soma.db")

_common = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
# ci: reproducible, and at least 10 000 cases for each decoder's fuzz test.
settings.register_profile("ci", max_examples=10_000, derandomize=True, database=None, print_blob=True, **_common)
# dev: quick local runs.
settings.register_profile("dev", max_examples=300, **_common)
# nightly (`make fuzz`): long, random, keeps and replays its example database.
settings.register_profile("nightly", max_examples=200_000, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_terminal_summary(terminalreporter):
    if CASES:
        terminalreporter.write_line(
            "fuzz cases per decoder: " + ", ".join(f"{name} {count}" for name, count in sorted(CASES.items()))
        )


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist: a worker's fuzz cases count for the whole run."""
    for name, cases in getattr(node, "workeroutput", {}).get("fuzz_cases", {}).items():
        CASES[name] += cases


def pytest_sessionfinish(session):
    """In the ci profile every decoder that was fuzzed must have seen FLOOR cases (judged
    once, where the counts of every xdist worker meet)."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["fuzz_cases"] = dict(CASES)
        return
    if os.environ.get("HYPOTHESIS_PROFILE") == "ci" and session.exitstatus == 0:
        short = {name: count for name, count in CASES.items() if count < FLOOR}
        if short:
            session.exitstatus = 1
            print(f"\nfuzz floor not reached ({FLOOR} cases per decoder): {short}")


@pytest.fixture(scope="session")
def firmware():
    """The generated codec, framing and auth modules under real MicroPython."""
    with FirmwareCodec() as service:
        yield service
