"""The firmware under real MicroPython (unix port), on the scripted board with the pad plant,
in virtual time: safety rules trip within their bounds on scripted faults and never in a
normal night; PID tracks set point steps; relay autotune stores usable gains.

Scenarios live in tests/mp/scenarios.py; each returns a JSON report judged here.
HEAP: the firmware plus the test harness (scripted board, plant, scenarios). The 96 KiB
budget of the firmware alone is measured by `make bench-firmware` (heap_used_bytes).
"""

import hashlib

import pytest

from mpexec import run_micropython
from soma.link.management import FAULT_CODES, fault_names
from soma_protocol import schema
from soma_protocol.auth import VERDICTS
from soma_protocol.enums import CalibrationState, RecordFlags

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core

HEAP = "384K"
FAULT = FAULT_CODES


def scenario(call, tmp_path, breaches=0):
    """Run a scenario; the safety oracle watching every bed in it must see `breaches` (none
    unless a test forces one)."""
    report = run_micropython(f"import scenarios; scenarios.{call}", heap=HEAP, cwd=tmp_path)
    verdicts = report.pop("oracle")
    assert sum(verdict["breaches"] for verdict in verdicts) == breaches, verdicts
    for key in ("latched", "after_clear"):
        if key in report:
            report[key] = fault_names(report[key])
    return report


def test_safe_boot_outputs_off_until_self_checks_pass(tmp_path):
    report = scenario("boot()", tmp_path)
    assert report["armed_at"] is not None and report["armed_at"] <= 0.5
    assert report["first_drive_at"] >= report["armed_at"]
    assert report["latched"] == []


def test_failed_self_check_never_arms(tmp_path):
    report = scenario("boot_with_open_sensor()", tmp_path)
    assert report["armed"] is False
    assert set(report["latched"]) == {"sensor_left", "self_test"}
    assert report["max_drive"] == 0


def test_overtemperature_trips_all_drive_at_once_and_clears_only_when_cool(tmp_path):
    report = scenario("overtemp()", tmp_path)
    assert report["reading_at"] is not None
    assert report["off_at"] == report["reading_at"]  # the same 10 Hz reading
    assert "overtemp" in report["latched"]
    assert report["enabled_hot"] is False  # the relay is open: nothing the drive does can heat
    overtemp_bit = 1 << FAULT["overtemp"]
    assert report["refused"][0][0] & overtemp_bit == 0  # not cleared while hot
    assert report["drive_while_latched"] == 0
    assert report["cleared"][0][0] & overtemp_bit
    assert report["after_clear"] == []
    assert report["drive_after_clear"] > 0  # control resumes


@pytest.mark.parametrize(
    ("kind", "sensor", "fault"),
    [
        ("open", 0, "sensor_left"),
        ("short", 0, "sensor_left"),
        ("open", 1, "sensor_right"),
        ("short", 1, "sensor_right"),
    ],
)
def test_pad_thermistor_open_or_short_turns_its_zone_off_within_half_a_second(tmp_path, kind, sensor, fault):
    report = scenario(f"sensor_fault({kind!r}, {sensor})", tmp_path)
    assert report["driving"] == [1000, 1000]
    assert report["zone_off_after"] <= 0.5
    assert report["latched"] == [fault]
    assert report["other_zone"] != 0  # the healthy zone keeps working
    assert [FAULT[fault], 1] in report["events"]  # reported as a fault event frame


def test_ambient_thermistor_fault_is_reported(tmp_path):
    report = scenario("sensor_fault('open', 2)", tmp_path)
    assert report["latched"] == ["sensor_ambient"]
    assert report["zone_off_after"] <= 0.5


def test_heating_without_rise_is_a_runaway(tmp_path):
    report = scenario("runaway('disconnected')", tmp_path)
    assert report["latched"] == ["no_rise_left"]
    assert report["detected_after"] <= 300 + 1  # runaway_rise_window_s
    assert report["zone0"] == 0 and report["zone1"] != 0


def test_leaving_the_band_after_settling_is_a_runaway(tmp_path):
    # Settled at 30 degC, the heater goes: the sleeper alone keeps the pad at 27 degC.
    report = scenario(
        "runaway('disconnected', {'runaway_band_window_s': 60}, target_c=30, start_c=30, settle_s=600)", tmp_path
    )
    assert report["latched"] == ["off_band_left"]
    assert report["zone0"] == 0


def test_a_shorted_bridge_is_caught_by_its_current_and_opens_the_relay(tmp_path):
    report = scenario("stuck_heater()", tmp_path)
    assert report["latched"] == ["stuck_left"]
    assert report["detected_after"] <= 0.7  # 0.5 s of current, and the reading it shows in
    assert report["relay_open_after"] <= 0.7 and report["enabled"] is False
    assert report["levels"][:2] == [0, 0]  # both zones: the relay feeds both H-bridges
    assert report["max_pad_c"] < 31.0 and report["fuses"] == [False, False]


def test_a_shorted_bridge_unseen_by_its_current_sense_is_caught_by_the_pad_rising(tmp_path):
    # The pad rises while the supervisor cools it hard: heat it did not apply.
    report = scenario("stuck_heater(sense=False)", tmp_path)
    assert report["latched"] == ["stuck_left"]
    assert report["detected_after"] <= 60
    assert report["enabled"] is False
    assert report["max_pad_c"] < 32.0 and report["fuses"] == [False, False]


def test_frozen_reading_while_driving_is_a_runaway(tmp_path):
    report = scenario("runaway('frozen')", tmp_path)
    assert report["latched"] == ["frozen_left"]
    assert report["detected_after"] <= 60 + 1  # frozen_window_s


def test_dead_man_forces_drive_off_after_three_seconds(tmp_path):
    report = scenario("deadman()", tmp_path)
    assert report["driving"] != 0
    assert report["off_after"] <= 3.0 + 0.2
    assert report["latched"] == ["deadman"]


def test_watchdog_is_fed_only_by_a_healthy_loop(tmp_path):
    report = scenario("watchdog()", tmp_path)
    assert report["timeout_ms"] == 2000
    assert report["healthy_gap_max_ms"] <= 10
    assert report["fed_after_stall_ms"] <= 500  # feeding stops once the supervisor stops
    assert report["stall_s"] > 2.0  # long enough for the 2 s watchdog to reset the board


def test_set_point_changes_cannot_keep_the_band_rule_from_counting(tmp_path):
    # Every change of set point used to restart the band rule: a runaway stayed unseen by it.
    config = "{'runaway_band_window_s': 60, 'runaway_rise_window_s': 900}"
    report = scenario(f"restless_setpoints((31, 30), 30, {config})", tmp_path)
    assert report["latched"] == ["off_band_left"]  # the rise rule given longer here
    assert report["detected_after"] <= 1000  # the pad leaves the band ~820 s in, then 60 s


def test_set_point_changes_cannot_keep_the_rise_rule_from_counting(tmp_path):
    # Heating to 40 degC, then cooling to 13, every 200 s: the rise rule used to start over at
    # each heat; it now counts the time spent heating, so a dead heater is seen.
    report = scenario("restless_setpoints((40, 13), 200)", tmp_path)
    assert report["latched"] == ["no_rise_left"]
    assert report["detected_after"] <= 2 * 300 + 2 * 200  # 300 s of heating, in 200 s turns


def test_nothing_written_to_a_unit_can_blind_or_switch_off_a_rule(tmp_path):
    report = scenario("refusals()", tmp_path)
    response, refused, bad_payload = 2, 4, 3
    answers = {name: tuple(answer) for name, answer in report["answers"].items()}
    assert answers == {
        "calibration ~15 K low": (5, refused),  # would read 15 K low: the trip blinded
        "calibration 1.5 K high": (response, None),  # a unit's own tolerance: taken
        "adc_open_above 65535": (5, bad_payload),  # an open thermistor would read as a temperature
        "adc_short_below 0": (5, bad_payload),
        "trip 43 degC": (5, bad_payload),
        "program at 45 degC": (5, bad_payload),
        "program of 12 h 1 s": (5, bad_payload),
        "program at 35 degC": (response, None),
    }
    assert report["calibration_state"] == int(CalibrationState.staged)  # the honest one
    assert report["config_saved"] is False


def test_heating_auto_off_without_an_intent_to_heat(tmp_path):
    # auto_off_min = 1 for the test; the host only reads after its one set point.
    report = scenario("auto_off()", tmp_path)
    assert 60 <= report["off_at"] <= 61
    assert report["drive_when_off"] <= 0
    assert report["drive_after_refresh"] > 0


def test_top_level_handler_turns_every_output_off(tmp_path):
    report = scenario("crash()", tmp_path)
    assert report["driving"] != 0
    assert report["raised"] == "a bug in a task"
    assert report["levels"] == [0, 0, 0, 0, 0]
    assert report["all_off_calls"] >= 1


@pytest.mark.parametrize("followed", [True, False])
def test_ctrl_c_gives_the_repl_to_a_tool_and_a_stray_one_restarts(tmp_path, followed):
    report = scenario(f"ctrl_c({followed})", tmp_path)
    assert report["driving"] != 0
    assert report["levels"] == [0, 0, 0, 0, 0] and report["enabled"] is False  # off before anything else
    assert report["held"] is True  # the REPL keeper holds the watchdog either way
    assert report["told"] is True  # one line on the console says what happens
    if followed:  # a tool: the REPL gets the console, and the tool's bytes are left for it
        assert report["reset"] is False and report["left_for_the_repl"] == [13, 1]
    else:  # a stray 0x03: the application restarts
        assert report["reset"] is True


def test_pid_tracks_a_set_point_step(tmp_path):
    report = scenario("pid_step()", tmp_path)
    assert report["overshoot_c"] <= 0.5
    assert report["steady_error_max_c"] <= 0.2
    assert report["latched"] == []


def test_relay_autotune_stores_gains_that_track(tmp_path):
    report = scenario("autotune()", tmp_path)
    running, done = report["events"]
    assert running[1] == 1 and done[1] == 2 and done[2] >= 12  # >= 12 peaks
    assert report["stored"] == done[3:6]  # written to the config record
    assert report["overshoot_c"] <= 0.5
    assert abs(report["final_error_c"]) <= 0.2
    assert report["latched"] == []


def test_a_normal_eight_hour_night_never_trips(tmp_path):
    report = scenario("night(8)", tmp_path)
    assert report["first_fault"] == []
    assert report["latched"] == []
    assert report["ticks"] >= 8 * 3600 * 100
    assert report["overruns"] == 0


def test_a_provisioned_key_takes_effect_at_the_next_boot(tmp_path):
    report = scenario("provision()", tmp_path)
    assert report["answer"] == [list(hashlib.sha256(bytes(range(32))).digest()[:4])]
    assert report["restarted"] and report["before"] == [False, 0]
    assert report["after"] == [True, 7, 3]


def test_console_answers_every_request_and_rejects_malformed_frames(tmp_path):
    report = scenario("console()", tmp_path)
    for seq, answer in enumerate(report["answers"], 1):
        assert len(answer) == 1, f"request {seq}: {answer}"
        kind, answered_seq, _ = answer[0]
        assert kind == 2 and answered_seq == seq  # a response, not an error
    error_codes = dict(report["errors"])
    assert error_codes[0] == 1  # bad CRC: bad_frame (sequence unknown)
    assert error_codes[201] == 2  # unknown message
    assert error_codes[202] == 3  # payload of the wrong size
    assert error_codes[203] == 1  # a response sent as a request
    assert report["drive_after"] != 0  # control undisturbed
    assert report["rebooted"] is True
    assert report["outputs_at_reboot"] == [0, 0, 0, 0, 0]


def test_sample_path_allocates_nothing(tmp_path):
    report = scenario("sample_path_allocation(2000)", tmp_path)
    assert report["allocated"] == 0  # sensors, and the sensing pipeline's sample and step
    assert 29_000 < report["temp"] < 31_000


def test_beacon_slot_about_once_a_second_with_per_bed_jitter(tmp_path):
    from soma_protocol import auth

    intervals = {}
    for bed_id in (3, 4):
        flash = tmp_path / str(bed_id)
        flash.mkdir()
        sent = scenario(f"beacons({bed_id}, 60)", flash)["sent"]
        verifier = auth.BeaconVerifier(bytes(range(32)), 7)
        verdicts = [verifier.check(bytes.fromhex(data))[0] for _, data in sent]
        assert verdicts == ["accepted"] * len(sent)  # signed with the provisioned key, fresh seq each
        times = [at for at, _ in sent]
        intervals[bed_id] = [round(b - a, 2) for a, b in zip(times, times[1:], strict=False)]
        assert 55 <= len(sent) <= 65
        assert all(0.79 <= gap <= 1.21 for gap in intervals[bed_id])
        assert len(set(intervals[bed_id])) > 5  # jittered, not a fixed period
    assert intervals[3] != intervals[4]  # beds do not fall into lockstep


def test_corrupt_records_mean_safe_defaults_and_a_flag(tmp_path):
    report = scenario("corrupt_records()", tmp_path)
    flags = {str(flag.name): int(flag) for flag in RecordFlags}
    expected = flags["calibration_corrupt"] | flags["config_corrupt"] | flags["comfort_corrupt"] | flags["key_corrupt"]
    assert report["record_flags"] == expected
    assert report["calibration_state"] == int(CalibrationState.corrupt)
    assert report["armed"] is True  # nominal curves and default limits: still a working, safe bed
    assert report["comfort"] is None


def test_only_authenticated_fresh_beacons_count_and_programs_stay_within_safety(tmp_path):
    report = scenario("radio_security()", tmp_path)
    # A forged lower root, another sanctuary's beacon and a corrupted one change nothing.
    assert report["root_alone"] == 2 and report["root_after_forgeries"] == 2
    counts = dict(zip(VERDICTS, report["counts"], strict=True))
    assert (counts["malformed"], counts["foreign"], counts["unauthenticated"]) == (1, 1, 1)
    # The genuine beacon counts once; its replay is refused.
    assert counts["accepted"] == 1 and report["peers_after_genuine"] == 1 and counts["replayed"] == 1
    # Its own five beacons played back: dropped and counted; no phantom peer, no grant lost.
    assert counts["own"] == 5 and report["peers_after_own"] == 1
    assert report["grant_after_own"][0] == report["grant_after_own"][1]
    # A program signed without the key is never taken; a signed one at 45 degC neither (the
    # firmware refuses a phase outside 13..40 degC whoever sends it); one at 35 degC is.
    assert report["program_after_forgery"] is False and report["program_at_45"] is False
    assert report["program"] == [9, 2] and report["target_mc"] == 35_000
    assert report["hottest_c"] <= 35.5 and report["latched"] == []


def test_a_sleeper_in_bed_goes_on_air_as_occupancy_and_readiness_only(tmp_path):
    report = scenario("sleeper_on_air(2, 75)", tmp_path)
    beacons = [(at, schema.Beacon.parse(bytes.fromhex(data))) for at, data in report["sent"]]
    # Unknown until the first 30 s epoch is closed; then occupied, and lying still: light or deep.
    assert {str(b.occupancy) for at, b in beacons if at < 29} == {"unknown"}
    late = [b for at, b in beacons if at > 31.5]
    assert late and {str(b.occupancy) for b in late} == {"occupied"}
    assert {str(b.wake_readiness) for b in late} <= {"light", "deep"}
    # The vitals themselves stay on the bed's own line (telemetry): 60 bpm, 15 breaths a minute.
    names = [subcon.name for subcon in schema.Telemetry.subcons]
    names[names.index("outputs_permille") : names.index("outputs_permille") + 1] = ["output"] * 5
    sleep = dict(zip(names, report["telemetry"], strict=True))
    assert sleep["sleep_epoch"] == 2 and sleep["occupancy"] == 2 and sleep["movement_s"] == 0
    assert sleep["vitals_valid"] == 3 and sleep["sleep_state"] in (2, 3)
    assert abs(sleep["heart_bpm_x10"] - 600) <= 10 and abs(sleep["breaths_per_min_x10"] - 150) <= 5
