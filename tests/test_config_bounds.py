"""No configuration switches a safety rule off (issue 15, item 4): every configuration value at
its low and at its high bound (the others at their defaults), and all of the loosest bounds
at once, each written to a unit over the line and put in force by a boot; against each, every
fault class (tests/mp/safety_runs.py config_bounds): a thermistor open, shorted, frozen; the
heater disconnected; the H-bridge shorted, seen by its current sense and not; a hot-water
bottle taking the pad to the trip; the control task dead (dead-man); the whole loop stalled
(watchdog). The oracle must see no breach, and the fault's rule must latch first, within its
bound for that configuration. One MicroPython process per configuration value.
"""

import pytest

from config_layout import BOUNDS, DEFAULTS, FIELDS, INDEX, accepted
from mpexec import run_micropython
from soma_protocol.enums import FaultCode

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core

HEAP = "384K"  # the firmware and the harness (the 96 KiB budget: tests/test_safety_stateful.py)
FAULT = {fault.name: int(fault) for fault in FaultCode}
# The loosest bound of every safety limit (the gains and the power budget at their defaults).
LOOSEST = {
    "trip_mc": "high",
    "setpoint_min_mc": "low",
    "setpoint_max_mc": "high",
    "adc_open_above": "high",
    "adc_short_below": "low",
    "runaway_rise_mc": "low",
    "runaway_rise_window_s": "high",
    "runaway_band_mc": "high",
    "runaway_band_window_s": "high",
    "frozen_window_s": "high",
    "deadman_ms": "high",
    "auto_off_min": "high",
}
EXPECTED = {  # the faults that stop each class (a stall: the watchdog)
    "open": ["sensor_left"],
    "short": ["sensor_left"],
    "frozen": ["frozen_left"],
    "disconnected": ["no_rise_left"],
    "bridge_short": ["stuck_left"],
    "bridge_short_unsensed": ["stuck_left", "overtemp"],  # (a trip set low comes first)
    "bottle": ["overtemp"],
    "deadman": ["deadman"],
}


def bound_s(fault, config):
    """How soon the fault's rule must have latched (stall: heat gone) under `config`."""
    value = dict(zip(FIELDS, config, strict=True))
    return {
        "open": 0.5,  # SPEC: the zone off within 0.5 s
        "short": 0.5,
        "frozen": value["frozen_window_s"] + 0.5,
        "disconnected": value["runaway_rise_window_s"] + 0.5,
        "bridge_short": 0.7,  # 0.5 s of current, and the reading it shows in
        # The pad rising while cooled: no SPEC time (its 5 s holds for the current sense); it
        # depends on how hard the gains cool. Judged by the SPEC's other bar, 42.5 degC, below.
        "bridge_short_unsensed": 600,
        "bottle": 900,  # (judged at the reading that reaches the trip, below)
        "deadman": value["deadman_ms"] / 1000 + 0.2,
        "stall": 2.6,  # the watchdog: fed 0.5 s after the last reading, 2 s timeout, a reading
    }[fault]


def with_bounds(bounds):
    """The defaults with {field: "low" | "high"}; a configuration the firmware would call
    contradictory (set points not below the trip) keeps its set points just below the trip."""
    values = list(DEFAULTS)
    for name, which in bounds.items():
        values[INDEX[name]] = BOUNDS[INDEX[name]][0 if which == "low" else 1]
    trip, high = INDEX["trip_mc"], INDEX["setpoint_max_mc"]
    values[high] = min(values[high], values[trip] - 1)
    low = INDEX["setpoint_min_mc"]
    values[low] = min(values[low], values[high])
    assert accepted(values), values
    return values


def configs_for(field):
    if field == "loosest":
        return [["loosest", with_bounds(LOOSEST)]]
    return [[f"{field}-{which}", with_bounds({field: which})] for which in ("low", "high")]


@pytest.mark.parametrize("field", [*FIELDS, "loosest"])
def test_every_fault_is_caught_in_time_with_a_configuration_at_its_bounds(tmp_path, field):
    configs = configs_for(field)
    results = run_micropython(f"import safety_runs; safety_runs.config_bounds({configs})", heap=HEAP, cwd=tmp_path)
    for (name, config), result in zip(configs, results, strict=True):
        assert result["accepted"], f"{name}: the unit refused a configuration within its bounds"
        for case in result["cases"]:
            where = f"{name}, {case['fault']}"
            assert case["in_force"], f"{where}: the configuration written is not the one in force"
            assert case["breaches"] == 0, f"{where}: the oracle saw {case['first_breaches']}"
            broken = set(case["violated"])
            assert not broken, f"{where}: firmware invariants broken: {case['violations']}"
            after = case["detected_after"]
            assert after is not None and after <= bound_s(case["fault"], config), f"{where}: caught after {after}"
            if case["fault"].startswith("bridge_short"):  # SPEC: a stuck heater never reaches 42.5 degC
                assert case["max_pad_c"] < 42.5, f"{where}: the pad reached {case['max_pad_c']} degC"
            if case["fault"] == "bottle":  # at the very reading that reached the trip
                assert case["reading_after"] is not None and abs(after - case["reading_after"]) < 1e-6, where
            if case["fault"] in EXPECTED:
                bit = sum(1 << FAULT[name] for name in EXPECTED[case["fault"]])
                assert case["latched"] & bit, f"{where}: latched {case['latched']}"
                if case["fault"] != "bottle":  # (a bottle's heat may be taken for a stuck heater first)
                    assert case["first_latched"][1] & bit, f"{where}: first latched {case['first_latched']}"
