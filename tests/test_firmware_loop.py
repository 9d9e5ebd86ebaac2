"""The loop's timekeeping under MicroPython (tests/mp/loop_checks.py): drift-free fixed-rate
scheduling across ticks wraps, overrun counting, and wrap-safe 64-bit local time."""

import pytest

from mpexec import run_micropython

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core


def check(call, tmp_path):
    return run_micropython(f"import loop_checks; loop_checks.{call}", cwd=tmp_path)


def test_fixed_rate_without_drift_across_ticks_wraps(tmp_path):
    report = check("drift()", tmp_path)
    assert report["ticks"] == 3600 * 1_000_000 // report["period_us"]  # not one tick lost or gained in an hour
    assert report["overruns"] == 0
    assert report["late_max_us"] == 0  # lateness never accumulates


def test_overruns_are_counted_and_the_loop_catches_up_without_bursting(tmp_path):
    report = check("overruns()", tmp_path)
    assert report["overruns"] == 1 and report["late_max_us"] >= 5_000
    assert abs(report["ticks"] - 1000) <= 1  # the rate held after the late tick
    assert report["stalled_overruns"] == 1  # the missed ticks were dropped, not run in a burst
    assert report["stalled_ticks"] < 1000


def test_local_time_is_wrap_safe(tmp_path):
    report = check("local_time()", tmp_path)
    assert report["mismatches"] == 0
    assert report["total_us"] > 10 * (1 << 30)
