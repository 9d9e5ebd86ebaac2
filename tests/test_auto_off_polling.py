"""Acceptance (issue 15): `soma info` / `soma monitor` polling a unit for a simulated 13 hours
leaves heating off after 12 h. One set point at the start, then only reads for 13 hours of
virtual time (tests/mp/safety_runs.py polling): telemetry streaming at 1 Hz, restarted every
hour as a monitor would be; info every 5 s (what `soma info` and `soma faults` ask); sensors
and loop statistics every minute; a self-test every 10 minutes. Heat reaches the pads up to
12 h after the set point and never after 12 h and a reading; auto_off is latched then, and
the host reads it in telemetry and info; the oracle sees no breach. About a minute of CPU.
"""

import pytest

from mpexec import run_micropython

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core

HOURS = 13
TWELVE_H = 12 * 3600
READING = 0.1  # the supervisor's 10 Hz


def test_polling_for_13_hours_leaves_heating_off_after_12(tmp_path):
    code = f"import safety_runs; safety_runs.polling({HOURS})"
    report = run_micropython(code, heap="384K", cwd=tmp_path, timeout=900)
    assert report["breaches"] == 0, report["first_breaches"]
    assert not report["violated"], report["violations"]
    off_at = report["intent_at"] + TWELVE_H
    # Heat up to the 12 hours (the pads held at 36 degC need it), none after them and a reading.
    assert off_at - 60 < report["last_heat_at"] <= off_at + READING, report
    assert off_at <= report["auto_off_at"] <= off_at + 2 * READING, report
    # What the host read: the drives no longer heating, auto_off in telemetry and in info.
    assert off_at - 5 < report["telemetry_last_heat_at"] <= off_at + READING, report
    assert off_at <= report["telemetry_auto_off_at"] <= off_at + 1 + READING, report
    assert off_at <= report["info_auto_off_at"] <= off_at + 5, report
    assert report["info_answers"] >= HOURS * 3600 // 5 - 2 and report["telemetry_frames"] >= HOURS * 3600 - 60
    assert report["overruns"] == 0
