"""Calibration in the simulated bath: units with R25 +-5 %, B +-2 % and ADC errors end within
0.1 degC at every point, and their BCG channel's zero and gain (+-600 codes, +-15 %) are
found against the fixture's shaker; a fit over the residual limit or a broken BCG channel
is refused and nothing is committed; the Steinhart-Hart and sine fits recover known curves.
An operator watches it: progress per point (live on a terminal, a line per phase in a log,
JSON lines), a unit left out of the bath named so in seconds and recorded, and a bath line
that a swapped-ports run filled with frames resynchronised before use."""

import dataclasses
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from soma.commands.calibrate import describe, report_lines
from soma.errors import SomaError, failure
from soma.link.management import ManagementTimeout
from soma.link.serial_link import SerialLink
from soma.sim.sanctuary import Sanctuary
from soma.station.calibration import (
    BATH_IDLE_C,
    Bath,
    CalibrationProgress,
    CalibrationReport,
    PresenceWatch,
    Timeline,
    calibrate,
    calibrate_units,
    curve_c,
    fit_sine,
    fit_steinhart_hart,
)
from soma.station.traceability import Records
from soma_protocol import codec
from terminal import run_in_terminal

SOMA = str(Path(sys.executable).with_name("soma"))


def test_fit_recovers_a_known_curve():
    known = (1.129148e-3, 2.34125e-4, 8.76741e-8)
    import math

    points = []
    for temp_c in (10.0, 20.0, 30.0, 40.0, 50.0):
        # invert 1/T = a + b x + c x^3 for x = ln R by bisection
        low, high = 0.0, 20.0
        for _ in range(200):
            mid = (low + high) / 2
            if curve_c(known, math.exp(mid)) > temp_c:
                low = mid
            else:
                high = mid
        points.append((math.exp(low), temp_c))
    fitted = fit_steinhart_hart(points)
    assert all(abs(curve_c(fitted, r) - t) < 1e-6 for r, t in points)


def test_sine_fit_recovers_amplitude_whatever_the_phase_and_timing():
    rng = random.Random(3)
    for phase in (0.0, 1.0, 2.5, 4.0):
        times = sorted(rng.uniform(1000.0, 1004.0) for _ in range(300))  # uneven, like request answers
        samples = [(t, 33000 + 3456 * math.sin(2 * math.pi * t + phase) + rng.gauss(0, 3)) for t in times]
        amplitude, mean = fit_sine(samples, 1.0)
        assert amplitude == pytest.approx(3456, rel=1e-3)
        assert mean == pytest.approx(33000, abs=1)


def stored_calibration(port):
    with SerialLink(port) as link:
        return codec.nest("calibration_read_response", link.management().request("calibration_read", timeout=5))


@pytest.mark.parametrize(
    ("seed", "bar", "points", "status"), [(4, 0.1, "15,22,29,36,42", 0), (11, 1e-6, "29,42,15", 1)]
)
def test_soma_calibrate_meets_the_bar_on_units_with_tolerances(tmp_path, seed, bar, points, status):
    # Seed 11 is judged against an impossible bar: the command must say it failed (exit 1).
    # Its points come in no order: the sweep back still ends at the coolest.
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True, time_scale=1000, seed=seed) as sanctuary:
        sanctuary.place_in_bath(1)
        result = subprocess.run(
            [SOMA, "calibrate", "--port", sanctuary.beds[0].port, "--bath", sanctuary.bath.port, "--json"]
            + ["--max-error", str(bar), "--points", points],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == status, result.stderr
        stored = stored_calibration(sanctuary.beds[0].port)
        unit = sanctuary.beds[0].unit
        with SerialLink(sanctuary.beds[0].port) as link:
            latched = link.management().request_fields("info", timeout=3)["fault_mask"]
    *events, report = [json.loads(line) for line in result.stdout.splitlines()]
    assert report["event"] == "report" and {event["event"] for event in events} == {"progress"}
    assert_steps_in_order(events, [float(point) for point in points.split(",")])
    assert report["passed"] == (status == 0)
    assert len(report["after_c"]) == len(points.split(","))
    assert report["max_error_after_c"] <= 0.1
    assert max(abs(error) for point in report["before_c"] for error in point.values()) > 0.1  # it was needed
    assert stored["state"] == 1 and stored["generation"] == report["generation"]
    zero, gain = stored["data"]["bcg_zero"], stored["data"]["bcg_gain_q16"] / 65536
    assert abs(zero - unit.bcg_offset) <= 30
    assert gain * unit.bcg_gain == pytest.approx(1.0, abs=0.01)
    assert abs(unit.bcg_offset) > 30 or abs(unit.bcg_gain - 1) > 0.01  # it was needed
    assert (report["bcg_zero"], report["bcg_gain"]) == (zero, gain)
    assert abs(report["bcg_error_after_pct"]) <= 2.0
    # The 42 degC point trips the supervisor, as it should; calibration ends cool and clears it.
    assert report["faults_cleared"] == ["overtemp"]
    assert report["faults_latched"] == [] and latched == 0


def assert_steps_in_order(events, set_points):
    """Each point of each sweep settles, then is read, in order; the fit and the commit come
    between the sweeps, which the reference shake opens; settling tells the bath and the
    unit; the time left is known once a point has settled, and is 0 when done."""
    steps = []
    for event in events:
        step = (event["sweep"], event["phase"], event["point"], event["target_c"])
        if not steps or steps[-1] != step:
            steps.append(step)
    n = len(set_points)
    hottest_first = sorted(set_points, reverse=True)
    expected = [("calibrate", "shaker", 0, None)]
    for number, target in enumerate(set_points, 1):
        expected += [("calibrate", "settling", number, target), ("calibrate", "reading", number, target)]
    expected += [("calibrate", "fit", 0, None), ("calibrate", "commit", 0, None), ("verify", "shaker", 0, None)]
    for number, target in enumerate(hottest_first, 1):
        expected += [("verify", "settling", number, target), ("verify", "reading", number, target)]
    expected.append(("verify", "done", 0, None))
    assert steps == expected
    assert all(event["points"] == n for event in events)
    settling = [event for event in events if event["phase"] == "settling"]
    assert all(event["bath_c"] is not None and len(event["unit_c"]) == 3 for event in settling)
    first_read = next(i for i, event in enumerate(events) if event["phase"] == "reading")
    assert all(event["seconds_left"] is None for event in events[:first_read])
    assert all(event["seconds_left"] >= 0 for event in events[first_read:])
    (fit,) = [event for event in events if event["phase"] == "fit"]
    assert 0 <= fit["residual_c"] <= 0.05  # three points: an exact fit
    assert events[-1]["seconds_left"] == 0


def test_a_unit_not_in_the_bath_is_named_so_in_seconds_and_recorded(tmp_path):
    # The bed is not placed in the bath: its sleeper's heart and breath, at 1000x, are all
    # its bed sensor reads. The bath's first move (22 -> 15 degC) shows the pads stay put.
    db = tmp_path / "records.db"
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True, time_scale=1000, in_bed_at_s=0) as sanctuary:
        bed = sanctuary.beds[0]
        started = time.monotonic()
        result = subprocess.run(
            [SOMA, "calibrate", "--port", bed.port, "--bath", sanctuary.bath.port, "--db", str(db)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        seconds = time.monotonic() - started
        assert (sanctuary.bath.target_c, sanctuary.bath.shaker_codes) == (BATH_IDLE_C, 0)
        with SerialLink(bed.port) as link:
            assert link.management().request("calibration_read", timeout=5)[0] == 0  # still nominal
    expected = str(failure("not_in_bath", serial=bed.unit.serial))
    assert "put it in and run again" in expected
    assert result.returncode == 2 and result.stderr == f"soma: error: {expected}\n", result.stderr
    assert seconds < 30, seconds  # the shake and the bath's first degree, not the sweep
    log = result.stdout.splitlines()  # not a terminal: a line per phase
    assert log[0] == f"{bed.unit.serial}: reference shake: is the unit in the bath; the BCG channel's zero and gain"
    assert log[1].startswith(f"{bed.unit.serial}: point 1/5 15.0 degC: settling, bath ")
    (run,) = Records(str(db), create=False).history(bed.unit.serial)
    assert (run["kind"], run["outcome"], run["status"], run["reason"]) == ("calibrate", "refused", "refused", expected)


def test_a_bath_that_does_not_answer_is_one_line_and_recorded(tmp_path):
    controller, silent = os.openpty()  # a port where nothing answers
    bath_port, db = os.ttyname(silent), tmp_path / "records.db"
    try:
        with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True, time_scale=1000) as sanctuary:
            sanctuary.place_in_bath(1)
            bed = sanctuary.beds[0]
            result = subprocess.run(
                [SOMA, "calibrate", "--port", bed.port, "--bath", bath_port, "--db", str(db)],
                capture_output=True,
                text=True,
                timeout=60,
            )
    finally:
        os.close(silent)
        os.close(controller)
    expected = str(failure("bath_no_answer", port=bath_port, command="*IDN?", seconds=1))
    assert result.returncode == 2 and result.stderr == f"soma: error: {expected}\n", result.stderr
    (run,) = Records(str(db), create=False).history(bed.unit.serial)
    assert (run["outcome"], run["reason"]) == ("refused", expected)


def test_in_a_shared_bath_the_unit_left_out_is_named_and_the_other_calibrates(tmp_path):
    with Sanctuary(beds=2, root=tmp_path / "beds", flashed=True, time_scale=1000, seed=4) as sanctuary:
        sanctuary.place_in_bath(2)
        events = []
        with (
            SerialLink(sanctuary.bath.port, 9600) as bath_link,
            SerialLink(sanctuary.beds[0].port) as out,
            SerialLink(sanctuary.beds[1].port) as inside,
        ):
            missing, report = calibrate_units(
                [out.management(), inside.management()], Bath(bath_link), (15.0, 28.0, 42.0), progress=events.append
            )
    assert isinstance(missing, SomaError) and str(missing) == str(
        failure("not_in_bath", serial=sanctuary.beds[0].unit.serial)
    )
    assert isinstance(report, CalibrationReport) and report.max_error_after_c <= 0.1
    assert report.bath == f"SomaSim,CalBath-1,{sanctuary.bath.serial},1.0"
    by_unit = {serial: [event for event in events if event.serial == serial] for serial in {e.serial for e in events}}
    left_out = [(event.phase, event.point) for event in by_unit[sanctuary.beds[0].unit.serial]]
    assert left_out[0] == ("shaker", 0) and set(left_out[1:]) == {("settling", 1)}
    assert by_unit[report.serial][-1].phase == "done"


def test_the_bath_line_is_resynchronised_after_frames_were_written_to_it(tmp_path):
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True, time_scale=1000, seed=4) as sanctuary:
        sanctuary.place_in_bath(1)
        with SerialLink(sanctuary.bath.port, 9600) as bath_link:
            swapped = bath_link.management()  # what a run with the ports swapped writes: the unit's frames

            def frames_to_the_bath():
                with pytest.raises(ManagementTimeout):
                    swapped.request("info", timeout=0.3)

            frames_to_the_bath()
            bath_link.write(b"*IDN?\n")  # the bath takes the frames it holds as the start of this line
            answers = b""
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                answers += bath_link.read(0.1)
            assert b"ERR:unknown command" in answers and b"SomaSim" not in answers, answers
            frames_to_the_bath()
        # A correct run now, at a terminal: it resynchronises, passes, and shows its progress live.
        status, screen = run_in_terminal(
            [SOMA, "calibrate", "--port", sanctuary.beds[0].port, "--bath", sanctuary.bath.port]
            + ["--points", "15,28,42", "--db", str(tmp_path / "records.db")],
            timeout=120,
        )
    assert status == 0, screen
    assert "ERR" not in screen
    assert "point 2/3 28.0 degC" in screen and "check 1/3 42.0 degC" in screen
    assert "left)" in screen and "bath °C" in screen
    assert screen.rstrip().endswith("PASSED")


def test_a_fit_over_the_residual_limit_is_refused(tmp_path):
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True, time_scale=1000) as sanctuary:
        sanctuary.place_in_bath(1)
        with SerialLink(sanctuary.bath.port, 9600) as bath_link, SerialLink(sanctuary.beds[0].port) as link:
            client = link.management()
            with pytest.raises(SomaError, match="over the 1e-06 degC limit: not committed"):
                calibrate(client, Bath(bath_link), residual_limit_c=1e-6, settle_timeout=30)
            assert client.request("calibration_read", timeout=5)[0] == 0  # still nominal


@pytest.mark.parametrize(
    ("broken", "refusal"),
    [
        ({"bcg_gain": 0.1}, "BCG channel: gain .* outside 0.5..2.0"),
        ({"bcg_offset": 6000.0}, "BCG channel: zero"),
        # Dead: it reads no shake at all, but the pads follow the bath: in it, not a missing unit.
        ({"bcg_gain": 0.0}, "BCG channel: the shaker's reference is not seen on the bed sensor, though the pads"),
    ],
)
def test_a_broken_bcg_channel_is_refused_and_nothing_is_committed(tmp_path, broken, refusal):
    sanctuary = Sanctuary(beds=1, root=tmp_path / "beds", flashed=True, time_scale=1000, seed=4)
    bed = sanctuary.beds[0]
    bed.unit = bed.world.unit = dataclasses.replace(bed.unit, **broken)
    with sanctuary:
        sanctuary.place_in_bath(1)
        with SerialLink(sanctuary.bath.port, 9600) as bath_link, SerialLink(bed.port) as link:
            client = link.management()
            bath = Bath(bath_link)
            with pytest.raises(SomaError, match=f"{refusal}.*: a broken channel, not committed"):
                calibrate(client, bath, set_points=(15.0, 28.0, 42.0), settle_timeout=30)
            assert client.request("calibration_read", timeout=5)[0] == 0  # still nominal
            assert bath.ask("VIBR:AMPL?") == "0"  # the shaker is off again


def test_a_curve_far_from_the_nominal_thermistor_is_refused_by_the_unit(tmp_path):
    # A wrong part on the right pad (R25 5 kOhm): the fit follows it, 15 K off the nominal NTC,
    # and a curve like that could hide an overheated pad from the trip: the unit refuses it.
    sanctuary = Sanctuary(beds=1, root=tmp_path / "beds", flashed=True, time_scale=1000, seed=4)
    bed = sanctuary.beds[0]
    bed.unit = bed.world.unit = dataclasses.replace(bed.unit, r25=(bed.unit.r25[0], 5000.0, bed.unit.r25[2]))
    bed.world.model.r25 = bed.unit.r25
    with sanctuary:
        sanctuary.place_in_bath(1)
        with SerialLink(sanctuary.bath.port, 9600) as bath_link, SerialLink(bed.port) as link:
            client = link.management()
            with pytest.raises(SomaError, match="pad_right: the fitted curve is more than 3 degC from the nominal"):
                calibrate(client, Bath(bath_link), set_points=(15.0, 28.0, 40.0), settle_timeout=30)
            assert client.request("calibration_read", timeout=5)[0] == 0  # still nominal


def test_the_text_report_shows_each_point_and_the_bcg_channel():
    report = CalibrationReport(
        "5c0a00000001",
        "869feb2b9e2dab0e",
        before_c=[{"pad_left": 0.8, "ambient": -0.41}],
        after_c=[{"pad_left": 0.012, "ambient": -0.004}],
        generation=3,
        bcg_zero=-231,
        bcg_gain=1.11102294921875,
        bcg_error_after_pct=-0.221,
    )
    assert list(report_lines(report, (15.0,))) == [
        "5c0a00000001: calibrated, generation 3",
        "   15.0 degC  pad_left +0.800 -> +0.012  ambient -0.410 -> -0.004",
        "  BCG         zero -231 codes  gain 1.1110  amplitude error after -0.22 %",
    ]
    report.faults_cleared, report.faults_latched = ["overtemp"], ["sensor_ambient"]
    assert list(report_lines(report, (15.0,)))[-2:] == [
        "  faults latched during calibration, cleared once cool: overtemp",
        "  faults still latched (see `soma faults`): sensor_ambient",
    ]


def progress_event(**fields):
    base = dict(serial="5c0a00000001", phase="settling", sweep="calibrate", point=2, points=5, target_c=22.0)
    base.update(elapsed_s=75.0, expected_s=912.0, seconds_left=8000.0, bath_c=18.123, unit_c=(18.5, 17.9, 17.2))
    return CalibrationProgress(**{**base, **fields})


@pytest.mark.cpu
def test_a_progress_line_says_where_what_it_reads_and_how_long_is_left():
    assert describe(progress_event()) == (
        "5c0a00000001: point 2/5 22.0 degC: settling, bath 18.12 degC, unit 18.50 17.90 17.20 degC, "
        "1 min 15 s of ~15 min 12 s, ~2 h 13 min left"
    )
    fit = progress_event(phase="fit", point=0, target_c=None, bath_c=None, unit_c=None, residual_c=0.0042)
    assert describe(fit) == "5c0a00000001: Steinhart-Hart fit, worst residual 0.0042 degC, ~2 h 13 min left"
    first = progress_event(point=1, target_c=15.0, expected_s=None, seconds_left=None, bath_c=None, unit_c=None)
    assert describe(first) == "5c0a00000001: point 1/5 15.0 degC: settling, 1 min 15 s"


@pytest.mark.cpu
def test_the_time_left_follows_the_points_settled_so_far():
    events = []
    timeline = Timeline("5c0a00000001", 3, events.append)
    timeline.tell("shaker")
    timeline.at(1, 15.0).tell("settling", 100.0)
    assert events[-1].seconds_left is None and events[-1].expected_s is None  # nothing settled yet
    timeline.settled(600.0)
    timeline.read(1.0)
    timeline.at(2, 22.0).tell("settling", 100.0)
    # This point's 500 s and its reading, one more point, the shake after the commit, three to check.
    assert events[-1].expected_s == 600.0
    assert events[-1].seconds_left == pytest.approx(501 + 601 + 5.0 + 3 * 601, abs=0.1)
    timeline.verify()
    timeline.at(3, 15.0).tell("reading")
    assert events[-1].seconds_left == pytest.approx(1.0)
    timeline.tell("done")
    assert (events[-1].point, events[-1].target_c, events[-1].seconds_left) == (0, None, 0.0)


@pytest.mark.cpu
def test_the_pads_tell_a_unit_out_of_the_bath_from_a_dead_bcg_channel_once_the_bath_moved():
    watch = PresenceWatch("5c0a00000001", 22.0, (22.1, 21.9, 22.0))
    watch.observe(21.2, (22.1, 21.9, 22.0))  # less than a degree: nothing told yet
    with pytest.raises(SomaError, match="5c0a00000001: the unit is not in the bath .*: put it in and run again"):
        watch.observe(20.5, (22.1, 21.95, 22.0))
    with pytest.raises(SomaError, match="though the pads follow the bath: a broken channel"):
        watch.observe(20.5, (21.6, 21.9, 22.0))  # pad_left lags, but follows
