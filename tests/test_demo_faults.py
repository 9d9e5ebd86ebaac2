"""`soma demo --inject FAULT`: each fault, injected half-way through a short night on flashed
virtual beds, meets the safe behaviour the demo judges (the bed faults safe and reports it,
the root fails over, forgeries are all rejected), the other beds carry on without a fault,
the safety oracle sees no breach on any bed, and the report names and marks the fault. The
four nights run at once (each its own sanctuary): the factory stages before the night are
`test_demo.py`'s."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from soma.demo.night import run_night
from soma.demo.outcome import BedOutcome
from soma.demo.report import write_report
from soma.demo.settings import FAULT_BED, FAULTS, DemoSettings
from soma.link.management import fault_names
from soma.link.session import open_unit
from soma.sanctuary.status import read_status
from soma.sim.sanctuary import Sanctuary

BEDS = {"thermistor-open": 2, "heater-stuck": 2, "root-loss": 3, "spoofed-beacons": 2}


def night_with(fault):
    settings = DemoSettings(beds=BEDS[fault], night_minutes=0.5, inject=fault)
    said = []
    with Sanctuary(beds=settings.beds, flashed=True, sleepers=False) as sanctuary:
        outcome = run_night(sanctuary, settings, [BedOutcome(n) for n in range(1, settings.beds + 1)], said.append)
        seen = witnessed(sanctuary)
    return outcome, said, seen


def witnessed(sanctuary):
    """Each bed after the night as the world and the bed itself tell it, apart from the demo's
    own judging: the world's relay and hottest true pad, and a fresh info and sanctuary status
    asked of the unit."""
    seen = []
    for bed in sanctuary.beds:
        with open_unit(bed.port) as unit:
            assert unit.info is not None
            status = read_status(unit.client)
        seen.append(
            {
                "relay_closed": bed.world.model.enable,
                "max_pad_c": bed.world.model.max_pad_c,
                "faults": set(fault_names(unit.info["fault_mask"])),
                "root": status["root_id"],
            }
        )
    return seen


@pytest.fixture(scope="module")
def nights():
    with ThreadPoolExecutor(max_workers=len(FAULTS)) as pool:
        return dict(zip(FAULTS, pool.map(night_with, FAULTS), strict=True))


def checks(outcome):
    return {label: (value, ok) for label, value, _, ok in outcome.checks}


@pytest.mark.parametrize("fault", ["thermistor-open", "heater-stuck"])
def test_the_faulty_bed_faults_safe_and_the_other_carries_on(nights, fault):
    outcome, said, seen = nights[fault]
    assert f"injecting: {FAULTS[fault]}" in said
    judged = checks(outcome)
    value, ok = judged[f"bed {FAULT_BED} faulted safe"]
    assert ok and value.endswith("; left drive off"), judged
    assert judged["faults on the other beds"] == ("none", True)
    faults = set(outcome.beds[FAULT_BED - 1].faults)
    if fault == "thermistor-open":
        assert "sensor_left" in faults
    else:  # the shorted H-bridge heats whatever it is told: the relay, opened at once, stopped it
        assert "stuck_left" in faults
        faulty = outcome.beds[FAULT_BED - 1]
        assert faulty.relay == "open"
        assert faulty.safety["max_pad_c"] < 42.5  # SPEC §8 (the night's pads are set to 29..34 degC)
        value, ok = judged[f"bed {FAULT_BED} heater enable relay"]
        assert ok and value.startswith("open; true pad max "), value
    assert outcome.beds[0].faults == []
    # the same, as the world and the units themselves tell it
    faulty, other = seen[FAULT_BED - 1], seen[0]
    assert ("sensor_left" if fault == "thermistor-open" else "stuck_left") in faulty["faults"]
    assert other["faults"] == set() and other["relay_closed"]
    assert faulty["relay_closed"] == (fault == "thermistor-open")  # a stuck bridge: the relay opened
    assert max(bed["max_pad_c"] for bed in seen) < 42.5
    (tripped,) = [event for event in outcome.report.events if event.label.startswith(f"bed {FAULT_BED}: ")]
    (injected,) = [event for event in outcome.report.events if event.label.startswith("fault injected")]
    assert tripped.kind == "fault" and tripped.t_s > injected.t_s  # the trip is marked where it happened


@pytest.mark.parametrize("fault", list(FAULTS))
def test_the_safety_oracle_saw_no_breach_on_any_bed(nights, fault):
    outcome = nights[fault][0]
    assert [bed.safety["breaches"] for bed in outcome.beds] == [0] * BEDS[fault]
    assert all(bed.safety["observations"] > 1000 for bed in outcome.beds)  # watched all along
    value, ok = checks(outcome)["safety oracle breaches"]
    assert ok and value.startswith("0 over "), value


def test_losing_the_root_hands_the_sanctuary_to_another_bed_within_ten_seconds(nights):
    judged = checks(nights["root-loss"][0])
    value, ok = judged["root failover"]
    assert ok, value
    assert "root [2]" in value  # the lowest bed id still on the air
    assert [bed["root"] for bed in nights["root-loss"][2][1:]] == [2, 2]  # as beds 2 and 3 say
    assert judged["faults on the other beds"] == ("none", True)


def test_forged_beacons_are_all_rejected_and_the_root_stays(nights):
    judged = checks(nights["spoofed-beacons"][0])
    rejected, ok = judged["forged beacons rejected"]
    assert ok and int(rejected) > 0
    assert judged["root after forgeries"] == ("[1]", True)
    assert [bed["root"] for bed in nights["spoofed-beacons"][2]] == [1, 1]  # as each bed says
    assert judged["faults on the other beds"] == ("none", True)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_the_report_names_and_marks_the_fault(nights, fault, tmp_path):
    report = nights[fault][0].report
    assert report.injected == fault and fault in report.title
    assert any(event.kind == "fault" and fault in event.label for event in report.events)
    _, page = write_report(report, tmp_path)
    text = page.read_text()
    assert f"Fault injected on purpose: <strong>{fault}</strong>" in text
    assert FAULTS[fault].split(":")[0].replace("'", "&#x27;") in text
