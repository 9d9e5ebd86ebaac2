"""soma bench: the plan file is validated with clear errors; the default plan passes on a
healthy virtual bed and writes JUnit XML (read back with junitparser), JSON and a
traceability record; every fault kind of the simulator fails the step that should catch it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from junitparser import JUnitXml

from soma.link.serial_link import SerialLink
from soma.sim.sanctuary import Sanctuary
from soma.sim.virtual_bed import POWER_ON
from soma.station.bench.kinds import Station
from soma.station.bench.plan import DEFAULT_PLAN, Plan, PlanError
from soma.station.bench.run import run_plan
from soma.station.calibration import Bath

SOMA = str(Path(sys.executable).with_name("soma"))
TIME_SCALE = 20  # the pads' physics 20x faster: thermal steps in seconds, the firmware in real time


def plan_with(**step):
    return {"name": "t", "version": 1, "step": [{"id": "s", **step}]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "t", "version": 1}, r"no \[\[step\]\]"),
        ({"name": "t", "version": 1, "step": [{"id": "s", "kind": "nope"}]}, "unknown kind 'nope'"),
        (plan_with(kind="sensor"), "parameter 'sensor' missing"),
        (plan_with(kind="sensor", sensor="elbow"), "sensor must be one of"),
        (plan_with(kind="sensor", sensor="ambient", colour=1), "unknown parameters colour"),
        (plan_with(kind="sensor", sensor="ambient", limits={"volts": {"min": 1}}), "measures no 'volts'"),
        (plan_with(kind="sensor", sensor="ambient", limits={"temperature_c": {"low": 1}}), "min = .., max = .."),
        (plan_with(kind="heater_step", zone="left", level_permille=5000, seconds=1), "level_permille must be"),
        ({"name": "t", "version": 1, "colour": 2, "step": []}, "unknown keys colour"),
    ],
)
def test_a_bad_plan_is_refused_with_the_reason(data, message):
    with pytest.raises(PlanError, match=message):
        Plan.from_data(data)


def test_a_plan_s_parameters_can_be_changed_only_to_what_a_plan_file_could_say():
    base = Plan.load(DEFAULT_PLAN)
    plan = base.with_params("heater_step", seconds=3.0)

    def heating(plan):
        return {step.id: step.params["seconds"] for step in plan.steps if step.kind == "heater_step"}

    assert heating(plan) == {"heater_left": 3.0, "heater_right": 3.0}
    assert heating(base) == {"heater_left": 15.0, "heater_right": 15.0}  # the plan it came from is unchanged
    with pytest.raises(PlanError, match="heater_step: seconds must be a number in 1..600"):
        plan.with_params("heater_step", seconds=0.1)
    with pytest.raises(PlanError, match="heater_step: unknown parameter 'volts'"):
        plan.with_params("heater_step", volts=12)
    with pytest.raises(PlanError, match="no kind 'heater'"):
        plan.with_params("heater", seconds=3.0)


def test_the_default_plan_loads_and_a_broken_file_is_one_line(tmp_path):
    plan = Plan.load(DEFAULT_PLAN)
    assert plan.needs_fixture and len(plan.steps) >= 10
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [")
    result = subprocess.run([SOMA, "bench", "--port", "/dev/null", "--plan", str(bad)], capture_output=True, text=True)
    assert result.returncode == 2 and "not a TOML file" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bench_without_the_fixture_it_needs_is_a_usage_error():
    result = subprocess.run([SOMA, "bench", "--port", "/dev/null"], capture_output=True, text=True)
    assert result.returncode == 2 and "--fixture" in result.stderr


def test_bench_on_a_blank_unit_is_one_line_and_exit_2(tmp_path):
    with Sanctuary(beds=1, root=tmp_path / "beds") as sanctuary:
        result = subprocess.run(
            [SOMA, "bench", "--port", sanctuary.beds[0].port, "--fixture", sanctuary.bath.port],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2 and "a blank MicroPython unit, no Soma firmware" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_default_plan_passes_on_a_provisioned_unit_with_junit_json_and_a_record(tmp_path):
    # Provisioned: the tightest heap, where the runaway step's configuration writes must fit,
    # and the radio step uses the operator's key.
    junit, report, db = tmp_path / "bench.xml", tmp_path / "bench.json", tmp_path / "soma.db"
    key_file = tmp_path / "sanctuary.key"
    key_file.write_text(bytes(range(32)).hex() + "\n")
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True, time_scale=TIME_SCALE) as sanctuary:
        bed = sanctuary.beds[0]
        with SerialLink(bed.port) as link:
            link.management().provision(7, 1, bytes(range(32)))
        sanctuary.place_in_fixture(1)
        result = subprocess.run(
            [SOMA, "bench", "--port", bed.port, "--fixture", sanctuary.bath.port, "--key", str(key_file)]
            + ["--junit", str(junit), "--report", str(report), "--db", str(db), "--station", "bench-7"],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED" in result.stdout
    suite = JUnitXml.fromfile(str(junit))
    cases = list(suite)
    assert [case.name for case in cases] == [step.id for step in Plan.load(DEFAULT_PLAN).steps]
    assert all(case.is_passed for case in cases) and suite.failures == 0 and suite.errors == 0
    data = json.loads(report.read_text())
    assert data["passed"] and data["serial"] == bed.unit.serial
    assert data["key"] == {"arrived": "sanctuary key", "left": "sanctuary key"}
    heater = next(step for step in data["steps"] if step["id"] == "heater_left")
    assert {m["name"] for m in heater["measurements"]} == {"idle_current_a", "current_a", "rise_c", "stuck_latched"}
    history = subprocess.run(
        [SOMA, "history", bed.unit.serial, "--db", str(db), "--json"], capture_output=True, text=True
    )
    assert history.returncode == 0 and '"bench"' in history.stdout and "bench-7" in history.stdout


def run_steps(sanctuary, step_ids, inject=None, at_step=None):
    """Run some steps of the default plan on bed 1 through the Python API; `inject()` is
    called when step `at_step` starts. Return {step id: StepResult}."""
    # Heating 3 s (a minute of pad time) shows a heater's current as well as the plan's 15 s.
    plan = Plan.load(DEFAULT_PLAN).only(step_ids).with_params("heater_step", seconds=3.0)
    with SerialLink(sanctuary.beds[0].port) as link, SerialLink(sanctuary.bath.port, 9600) as fixture:
        client = link.management()
        client.request("info", timeout=10)

        def progress(index, total, step_id):
            if step_id == at_step and inject:
                inject()

        report = run_plan(plan, Station(client, Bath(fixture), test_key=True), progress=progress)
    return {step.id: step for step in report.steps}


@pytest.mark.parametrize(
    ("kind", "index", "failing", "why"),
    [
        ("open", 0, "sensor_pad_left", "temperature_c"),
        ("short", 1, "sensor_pad_right", "temperature_c"),
        ("frozen", 2, "sensor_ambient", "code_spread"),
        ("disconnected", 0, "heater_left", "current_a"),
        # The unit latches stuck_right within 0.6 s of closing its relay after the boot checks, and
        # opens it: by the bench's step the heater draws nothing, idle or driven.
        ("bridge_short", 1, "heater_right", "stuck_latched"),
    ],
)
def test_each_sensor_and_heater_fault_fails_the_step_that_checks_it(tmp_path, kind, index, failing, why):
    steps = ["identity", "sensor_pad_left", "sensor_pad_right", "sensor_ambient", "heater_left", "heater_right"]
    steps = [step for step in steps if step.startswith("sensor") or step in ("identity", failing)]
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True, time_scale=TIME_SCALE) as sanctuary:
        sanctuary.place_in_fixture(1)
        sanctuary.beds[0].world.model.inject(kind, index)
        results = run_steps(sanctuary, steps)
    assert not results[failing].passed
    assert why in results[failing].message
    if kind == "bridge_short":
        measured = {m.name: m.value for m in results[failing].measurements}
        assert measured["idle_current_a"] == measured["current_a"] == 0.0
    assert all(result.passed for step_id, result in results.items() if step_id != failing), {
        step_id: result.message for step_id, result in results.items()
    }


@pytest.mark.parametrize("fault", ["stall", "brownout"])
def test_a_reset_the_plan_did_not_ask_for_fails_the_stability_step(tmp_path, fault):
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True, time_scale=TIME_SCALE) as sanctuary:
        sanctuary.place_in_fixture(1)
        line = sanctuary.beds[0].line
        inject = line.freeze if fault == "stall" else (lambda: line.reset(POWER_ON))
        results = run_steps(sanctuary, ["identity", "sensor_ambient", "stability"], inject, at_step="sensor_ambient")
    assert not results["stability"].passed
    assert "unexpected_resets" in results["stability"].message
    assert results["identity"].passed


def test_the_radio_step_counts_the_reference_beacons_only(tmp_path):
    # A neighbour of the same sanctuary beacons too; the fixture is a shield box, so the
    # unit inside hears the reference radio alone and the ratio is exact.
    key = bytes(range(32))
    with Sanctuary(beds=2, root=tmp_path / "beds", flashed=True, time_scale=TIME_SCALE) as sanctuary:
        for number, bed in enumerate(sanctuary.beds, 1):
            with SerialLink(bed.port) as link:
                link.management().provision(7, number, key)
        sanctuary.place_in_fixture(1)
        plan = Plan.load(DEFAULT_PLAN).only(["radio"])
        with SerialLink(sanctuary.beds[0].port) as link, SerialLink(sanctuary.bath.port, 9600) as fixture:
            report = run_plan(plan, Station(link.management(), Bath(fixture), key=key))
    radio = {m.name: m.value for m in report.steps[0].measurements}
    assert report.passed and radio["received_ratio"] == 1.0


def bench(port, fixture, *options):
    return subprocess.run(
        [SOMA, "bench", "--port", port, "--fixture", fixture, "--only", "identity", "--only", "radio", *options],
        capture_output=True,
        text=True,
        timeout=120,
    )


def key_flags(port):
    info = subprocess.run([SOMA, "info", "--port", port, "--json"], capture_output=True, text=True, timeout=30)
    return [flag for flag in json.loads(info.stdout)["record_flags"] if flag.startswith("key")]


def test_the_bench_uses_the_operators_key_and_the_public_test_key_only_when_asked(tmp_path):
    key_file = tmp_path / "sanctuary.key"
    key_file.write_text(bytes(range(32)).hex() + "\n")
    report = tmp_path / "bench.json"
    with Sanctuary(beds=2, root=tmp_path / "beds", flashed=True) as sanctuary:
        blank, provisioned = (bed.port for bed in sanctuary.beds)
        fixture = sanctuary.bath.port
        given = subprocess.run(
            [SOMA, "provision", "--port", provisioned, "--sanctuary", "7", "--bed", "2", "--key", str(key_file)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert given.returncode == 0, given.stderr
        # An unprovisioned unit: neither the operator's key nor, unasked, the public one goes in.
        for options, why in [
            ((), "the unit is not provisioned: its radio needs a key"),
            (("--key", str(key_file)), "cannot hold the key given (--key): provision it first"),
        ]:
            refused = bench(blank, fixture, *options)
            assert refused.returncode == 2 and why in refused.stderr and "--test-key" in refused.stderr
            assert len(refused.stderr.strip().splitlines()) == 1
        assert key_flags(blank) == ["key_missing"]
        # A provisioned unit keeps its key: the public one is refused, its own is used.
        refused = bench(provisioned, fixture, "--test-key")
        assert refused.returncode == 2 and "holds a sanctuary key" in refused.stderr and "--key FILE" in refused.stderr
        sanctuary.place_in_fixture(2)
        own = bench(provisioned, fixture, "--key", str(key_file), "--report", str(report))
        assert own.returncode == 0, own.stdout + own.stderr
        assert json.loads(report.read_text())["key"] == {"arrived": "sanctuary key", "left": "sanctuary key"}
        # Asked for, the public test key goes into the unprovisioned unit, and the report says it stays.
        sanctuary.place_in_fixture(2, inside=False)  # one unit at a time in the shield box
        sanctuary.place_in_fixture(1)
        test = bench(blank, fixture, "--test-key", "--report", str(report))
        assert test.returncode == 0, test.stdout + test.stderr
        data = json.loads(report.read_text())
        assert data["key"] == {"arrived": "none", "left": "bench test key"}
        assert any("PUBLIC bench test key" in note for note in data["notes"])
        assert "arrived with none, leaves with bench test key" in test.stdout
        assert key_flags(blank) == []


@pytest.mark.parametrize("fault", ["loss", "partition"])
def test_radio_loss_or_a_partition_fails_the_radio_step(tmp_path, fault):
    with Sanctuary(beds=2, root=tmp_path / "beds", flashed=True, time_scale=TIME_SCALE) as sanctuary:
        sanctuary.place_in_fixture(1)
        if fault == "loss":
            sanctuary.world.radio.settings.loss = 1.0
        else:
            sanctuary.world.radio.partition([0], [1])
        results = run_steps(sanctuary, ["identity", "radio"])
    assert not results["radio"].passed
    assert "received_ratio" in results["radio"].message
