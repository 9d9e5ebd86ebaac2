"""soma station: four blank virtual beds down the whole line (flash, calibrate in the bath,
bench in the fixture, provision, label), one of them with a thermistor that breaks as it
leaves the bath and fails at the bench, recorded so; then the line again, resumed: what
passed is skipped."""

import json
import subprocess
import sys
from pathlib import Path

from junitparser import Failure, JUnitXml, Skipped

from soma.sim.control import ControlServer
from soma.sim.sanctuary import Sanctuary
from soma.station.bench.plan import DEFAULT_PLAN

SOMA = str(Path(sys.executable).with_name("soma"))
STAGES = ["flash", "calibrate", "bench", "provision"]
BROKEN = 3  # the bed whose ambient thermistor sticks as it comes out of the bath


def station_run(argv, timeout=240):
    """`soma station ... --json`: (exit status, its progress events, its outcome per port, stderr)."""
    result = subprocess.run([SOMA, "station", *argv, "--json"], capture_output=True, text=True, timeout=timeout)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    events = [line for line in lines if "state" in line]
    outcomes = {line["port"]: line for line in lines if "stages" in line}
    return result.returncode, events, outcomes, result.stderr


def test_four_blank_beds_down_the_line_then_resumed(tmp_path):
    key = tmp_path / "sanctuary.key"
    key.write_text("5a" * 32 + "\n")
    # The plan's heater steps heat 3 s: a minute of pad time at the sanctuary's time scale.
    plan = tmp_path / "plan.toml"
    plan.write_text(DEFAULT_PLAN.read_text().replace("seconds = 15.0", "seconds = 3.0"))
    db, junit, control = tmp_path / "records.db", tmp_path / "station.xml", tmp_path / "sim.sock"
    # The bath 1000x: a unit in it takes its temperature; the pads 20x, as the bench's steps expect.
    sanctuary = Sanctuary(beds=4, root=tmp_path / "beds", time_scale=20, bath_time_scale=1000, sleepers=False)
    place_in_bath = sanctuary.place_in_bath

    def leaving_the_bath(*numbers, inside=True):
        place_in_bath(*numbers, inside=inside)
        if not inside and BROKEN in numbers:  # knocked on the way out: its reading sticks
            sanctuary.beds[BROKEN - 1].world.model.inject("frozen", 2)

    sanctuary.place_in_bath = leaving_the_bath
    with sanctuary:
        server = ControlServer(sanctuary, control)
        server.start()
        try:
            ports = [bed.port for bed in sanctuary.beds]
            argv = [arg for port in ports for arg in ("--port", port)]
            argv += ["--bath", sanctuary.bath.port, "--key", str(key), "--sanctuary", "7", "--first-bed", "11"]
            argv += ["--plan", str(plan), "--db", str(db), "--control", str(control), "--station", "line-1"]
            first = station_run([*argv, "--junit", str(junit)])
            junit_first = JUnitXml.fromfile(str(junit))
            second = station_run([*argv, "--junit", str(junit)], timeout=120)
            junit_second = JUnitXml.fromfile(str(junit))
        finally:
            server.close()
    serials = [bed.unit.serial for bed in sanctuary.beds]
    broken_port, broken_serial = ports[BROKEN - 1], serials[BROKEN - 1]

    # The first run: every stage of every unit done; the broken one fails at the bench.
    status, events, outcomes, stderr = first
    assert status == 1, stderr
    assert stderr == ""  # a failed check is a verdict, not an error
    for number, (port, serial) in enumerate(zip(ports, serials, strict=True), 1):
        outcome = outcomes[port]
        states = {stage: outcome["stages"][stage]["state"] for stage in STAGES}
        assert outcome["serial"] == serial and outcome["bed_id"] == 10 + number
        if number == BROKEN:
            assert states == {"flash": "passed", "calibrate": "passed", "bench": "failed", "provision": "not reached"}
            assert outcome["failed_stage"] == "bench" and "sensor_ambient" in outcome["reason"]
            assert outcome["label"] is None
        else:
            assert states == dict.fromkeys(STAGES, "passed"), (outcome["reason"], outcome)
            label = outcome["label"]
            assert label.startswith(serial) and "calibration generation" in label and "bench SB-1" in label
            assert label.endswith(f"sanctuary 7 bed {10 + number}")
    # Live progress: each unit's stages ran in turn, the calibration's points and the bench's steps told.
    told = [(event["port"], event["stage"], event["state"]) for event in events]
    for port in ports:
        mine = [(stage, state) for where, stage, state in told if where == port]
        assert (
            mine.index(("flash", "running")) < mine.index(("calibrate", "running")) < mine.index(("bench", "running"))
        )
    assert any("point 5/5" in event["detail"] for event in events if event["stage"] == "calibrate")
    assert any("fixture" in event["detail"] for event in events if event["stage"] == "bench")

    # The JUnit XML: a suite per unit, a case per stage.
    suites = {suite.name: suite for suite in junit_first}
    assert set(suites) == set(serials)
    for serial, suite in suites.items():
        cases = {case.name: case for case in suite}
        assert list(cases) == STAGES
        if serial == broken_serial:
            assert (
                isinstance(cases["bench"].result[0], Failure) and "sensor_ambient" in cases["bench"].result[0].message
            )
            assert isinstance(cases["provision"].result[0], Skipped)  # never given the key
        else:
            assert all(case.is_passed for case in cases.values()), serial

    # The records: every stage of every unit, the broken unit's bench failed with its reason.
    units = json.loads(
        subprocess.run([SOMA, "units", "--db", str(db), "--json"], capture_output=True, text=True, check=True).stdout
    )
    recorded = {unit["serial"]: unit["stages"] for unit in units}
    assert set(recorded) == set(serials)
    for serial, stages in recorded.items():
        if serial == broken_serial:
            assert (stages["bench"]["outcome"], stages["bench"]["status"]) == ("fail", "failed")
            assert "sensor_ambient" in stages["bench"]["reason"] and stages["bench"]["station"] == "line-1"
            assert stages["provision"] is None
        else:
            assert all(stages[stage]["status"] == "ok" for stage in STAGES), stages
            assert stages["provision"]["details"]["sanctuary_id"] == 7

    # Again: what passed is skipped; the broken unit is benched again and fails again.
    status, events, outcomes, stderr = second
    assert status == 1, stderr
    for port in ports:
        states = {stage: outcomes[port]["stages"][stage]["state"] for stage in STAGES}
        if port == broken_port:
            assert states == {"flash": "skipped", "calibrate": "skipped", "bench": "failed", "provision": "not reached"}
            assert "sensor_ambient" in outcomes[port]["reason"]
        else:
            assert states == dict.fromkeys(STAGES, "skipped"), outcomes[port]
            assert outcomes[port]["label"] == first[2][port]["label"]  # told from the records and the unit
            assert "passed before" in outcomes[port]["stages"]["bench"]["detail"]
    for suite in junit_second:
        for case in suite:
            if suite.name == broken_serial and case.name == "bench":
                assert isinstance(case.result[0], Failure)
            else:
                assert isinstance(case.result[0], Skipped), (suite.name, case.name)
    history = json.loads(
        subprocess.run(
            [SOMA, "history", broken_serial, "--db", str(db), "--json"], capture_output=True, text=True, check=True
        ).stdout
    )
    assert [run["kind"] for run in history if run["kind"] != "flash"] == ["calibrate", "bench", "bench"]
