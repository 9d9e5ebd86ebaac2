"""soma monitor: telemetry in human units under a header naming the bed; a unit that restarts
under it is said so and streams again; --json keeps the wire's fields."""

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from soma.link.serial_link import SerialLink
from soma.link.telemetry import bed_title, restart_notice, telemetry_rows
from soma.sim.sanctuary import Sanctuary
from soma.sim.virtual_bed import POWER_ON
from soma_protocol import codec
from terminal import run_in_terminal

pytestmark = pytest.mark.concurrent  # virtual beds in real time, no timing bar judged: two at a time

SOMA = str(Path(sys.executable).with_name("soma"))
RESET_AT_S = 3.0


def sample(**changed):
    """A telemetry frame as it comes off the wire (encoded, then decoded), nested."""
    fields = {
        "uptime_ms": 61_500,
        "pad_left_mc": 21_250,
        "pad_right_mc": 30_120,
        "ambient_mc": 22_765,
        "setpoint_left_mc": 0,
        "setpoint_right_mc": 31_000,
        "drive_left_permille": 0,
        "drive_right_permille": 350,
        "current_left_ma": 0,
        "current_right_ma": 3_480,
        "outputs_permille.0": 0,
        "outputs_permille.1": 350,
        "outputs_permille.2": 600,
        "outputs_permille.3": 0,
        "outputs_permille.4": 1000,
        "fault_mask": (1 << 1) | (1 << 10),  # sensor_left, deadman
        "tick_overruns": 2,
        "heap_used_bytes": 65_280,
        "sync_flags": 1,  # synced
        "global_time_us": 663_598_000,
        "local_ticks_us": 820_521_654,
        "sync_root_id": 3,
        "sleep_epoch": 4,
        "occupancy": 2,  # Occupancy.occupied
        "movement_s": 3,
        "breaths_per_min_x10": 145,
        "heart_bpm_x10": 623,
        "vitals_valid": 3,  # heart, breathing
        "sleep_state": 2,  # light
        "heater_enable": 1,
        **changed,
    }
    order = [leaf.path for leaf in codec.MESSAGES["telemetry"].fields]
    wire = codec.encode("telemetry", [fields[path] for path in order])
    return codec.nest("telemetry", codec.decode("telemetry", wire))


@pytest.mark.cpu
def test_telemetry_is_shown_in_human_units_and_names():
    rows = dict(telemetry_rows(sample()))
    assert rows["left pad"] == "21.25 °C  (off)"
    assert rows["right pad"] == "30.12 °C  (set 31.00 °C)"
    assert rows["ambient"] == "22.77 °C"
    assert rows["right drive"] == "35.0 %  42 W  3.48 A"  # 35 % of the 120 W of full drive
    assert rows["faults"] == "sensor_left, deadman"
    assert rows["occupancy"] == "in bed"
    assert rows["sleeper"] == "light · heart 62.3 bpm · breathing 14.5 /min · moved 3 s of the last 30"
    assert rows["sync"] == "synced, follows root bed 3 · global time 663.598 s"
    assert rows["unit"] == "up 61.5 s · 2 loop overruns · heap 63.8 KiB used"
    assert rows["outputs"] == "haptic 60 %  wake light 0 %  status led 100 %"
    assert rows["heater relay"] == "closed"


@pytest.mark.cpu
def test_an_empty_bed_an_unsure_rate_cooling_and_no_root_read_as_such():
    rows = dict(telemetry_rows(sample(occupancy=1, vitals_valid=2, drive_left_permille=-500, sync_flags=0)))
    assert rows["occupancy"] == "empty"  # Occupancy 1 is an empty bed, not an occupied one
    assert "heart - · breathing 14.5 /min" in rows["sleeper"]
    assert rows["left drive"].endswith("cooling") and " 60 W" in rows["left drive"]
    assert rows["sync"].startswith("not synced, follows root bed 3 · ")
    rows = dict(telemetry_rows(sample(sync_flags=3, sync_root_id=1, fault_mask=0, heater_enable=0)))
    assert rows["sync"].startswith("synced, root (the others follow its clock) · ")
    assert rows["faults"] == "none" and rows["heater relay"].startswith("open")
    assert restart_notice(6) == "unit restarted (cause brownout): telemetry resumed"
    info = {"unit_serial": b"5c0ae80e87e8", "bed_id": 0, "sanctuary_id": 0}
    assert bed_title(info, "/dev/pts/4") == "not provisioned · unit 5c0ae80e87e8 · /dev/pts/4"
    assert bed_title({**info, "bed_id": 2, "sanctuary_id": 7}, "P").startswith("bed 2 of sanctuary 7 · ")


def test_a_unit_that_restarts_under_json_monitor_streams_again(tmp_path):
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True) as sanctuary:
        bed = sanctuary.beds[0]
        threading.Timer(RESET_AT_S, bed.line.reset, (POWER_ON,)).start()
        result = subprocess.run(
            [SOMA, "monitor", "--port", bed.port, "--json", "--seconds", "9", "--period-ms", "200"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    (notice,) = [index for index, line in enumerate(lines) if "notice" in line]
    assert lines[notice] == {"notice": "unit restarted (cause power_on): telemetry resumed", "reset_cause": "power_on"}
    before = [line for line in lines[:notice] if "uptime_ms" in line]
    after = [line for line in lines[notice:] if "uptime_ms" in line]
    assert len(before) >= 5 and len(after) >= 5, (len(before), len(after))
    assert after[0]["uptime_ms"] < before[-1]["uptime_ms"]  # the new boot's
    boots = [line for line in lines[:notice] if line.get("event") == "boot_event"]
    assert [boot["reset_cause"] for boot in boots] == ["power_on"]
    # The wire's units, raw (the first frames of a boot may precede its first readings).
    assert before[-1]["pad_left_mc"] > 1000 and before[-1]["occupancy"] in (0, 1, 2)


def test_the_live_table_names_the_bed_speaks_human_units_and_says_the_unit_restarted(tmp_path):
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True) as sanctuary:
        bed = sanctuary.beds[0]
        with SerialLink(bed.port) as link:
            link.management().provision(7, 2, bytes(range(32)))
        threading.Timer(RESET_AT_S, bed.line.reset, (POWER_ON,)).start()
        status, text = run_in_terminal([SOMA, "monitor", "--port", bed.port, "--seconds", "8"], timeout=60)
    assert status == 0, text
    assert f"bed 2 of sanctuary 7 · unit {bed.unit.serial} · {bed.port}" in text
    assert "unit restarted (cause power_on): telemetry resumed" in text
    # The sleepers get into bed at 600 s: no epoch has closed yet.
    shown = [("left pad", "°C"), ("right drive", " W "), ("occupancy", "not known yet"), ("sleeper", "heart -")]
    for label, shape in shown:
        assert any(label in line and shape in line for line in text.splitlines()), (label, text[-3000:])
    assert "pad_left_mc" not in text and "heart_bpm_x10" not in text
