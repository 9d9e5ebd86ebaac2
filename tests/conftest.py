"""Shared fixtures: hypothesis profiles, one long-lived MicroPython codec service, the
safety oracle's verdict on every virtual bed a test runs, and a real PostgreSQL server for
the traceability records."""

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
from postgres_server import PostgresServer, ServerUnavailable
from soma.crosscheck.firmware_codec import FirmwareCodec
from soma.sim.world import oracles_created

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


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL server for the session (per xdist worker). One that cannot start
    fails the tests that need it, with the reason in one line: never a skip."""
    try:
        server = PostgresServer()
    except ServerUnavailable as exc:
        pytest.fail(f"PostgreSQL for the tests: {exc}", pytrace=False)
    try:
        server.start()
    except ServerUnavailable as exc:
        server.stop()
        pytest.fail(f"PostgreSQL for the tests: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def records_db(request, tmp_path):
    """A new traceability database, not yet created, as `--db` names it: a SQLite file, or
    a new database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "records.db")
    return request.getfixturevalue("postgres").new_database()


def _refereed(request):
    """Collect the safety oracles of the virtual beds created in this fixture's scope; when it
    ends, fail on any breach they saw, unless the scope is marked `breach_expected` (a test
    that forces a breach asserts it itself)."""
    with oracles_created() as oracles:
        yield
    if request.node.get_closest_marker("breach_expected"):
        return
    breaches = sum(oracle.breached for oracle in oracles)
    if breaches:
        told = "; ".join(f"{rule} ({detail})" for oracle in oracles for _, rule, detail in oracle.breaches)
        pytest.fail(f"the safety oracle saw {breaches} breaches: {told}")


@pytest.fixture(autouse=True)
def safety_oracle(request):
    """A test's own virtual beds."""
    yield from _refereed(request)


@pytest.fixture(autouse=True, scope="module")
def safety_oracle_module(request):
    """A module's shared virtual beds (module fixtures are set up before any test's)."""
    yield from _refereed(request)
