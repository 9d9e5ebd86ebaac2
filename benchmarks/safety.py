"""Safety benchmarks: whole virtual nights of the firmware under MicroPython (the scripted board,
the pad plant and its safety oracle, in virtual time: tests/mp/safety_runs.py night()), with
faults injected at random moments and without.

How a night is built: BEDS beds, each a unit of its own (its three thermistors a little off
nominal, calibrated to them at the start as a station would; its room at 18..24 degC), for
each seed in SEEDS twice: once clean, once faulted. The seed draws the night: the program's
set points (33 degC to fall asleep, then 28..34 degC changing every 40 to 80 minutes, 34 degC
for the last half hour, each sent again every half hour as a program's intent), the sleeper
(in bed after 5 to 15 minutes, up once or twice for 5 to 10 minutes, out in the last quarter
hour) and, on a faulted night, one fault of every class, in a random order, each at a random
moment of its own stretch of the night, on a random zone: a pad thermistor open, shorted or
frozen; the heater disconnected; the H-bridge shorted, seen by its current sense or not; a
250 W hot-water bottle on the left pad; the control task dead (dead-man); the whole loop
stalled (the watchdog). Frozen, disconnected and stall come 5 s into a program step of +4
degC, so that their rule has heating to watch. Each fault is watched until it latched, then
healed (a stall: the watchdog's reset) and cleared once its cause has gone, and the night
goes on. Nights run two at a time (one MicroPython process each).

Figures (bars from SPEC §3 and §8):
- safety.breaches: breaches the oracles saw over every night (bar 0)
- safety.invariant_breaks: sleeps at which the firmware's own safety invariants were
  broken (tests/mp/safety_bed.py; bar 0)
- safety.false_trips: faults latched on the clean nights (bar 0)
- safety.detect_s_max_<fault>: the longest a class took, from its injection, to latch its
  fault: open, short (bar 0.5 s), frozen (the 60 s frozen window), disconnected (300 s of
  heating without a rise), bridge_short (0.5 s of current, and a reading), bridge_short_unsensed
  (no time bound in the SPEC: judged by max_true_pad_c), deadman (3 s), stall (heat gone
  within the watchdog's 2 s after the loop's last healthy reading); overtemp from the
  reading that reached 42 degC (bar 0: the same reading)
- safety.undetected: faults never caught (bar 0)
- safety.max_true_pad_c: the hottest true pad while a heater was stuck (bar below 42.5 degC)
- safety.stuck_heater_detect_s: the longest a shorted H-bridge ran before the supervisor
  latched it and opened the relay, seen by its current sense (bar 5 s)
- safety.fuses_blown: pad fuses that blew (bar 0)
"""

import sys
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# tests/ is on sys.path at run time (benchmarks/__init__.py), not on the type checker's.
from mpexec import compiled_tree, run_micropython  # pyright: ignore[reportMissingImports]

from . import Result

BEDS = 4
SEEDS = (1, 2)
HOURS = 8
HEAP = "384K"  # the firmware and the harness (its 96 KiB: tests/test_safety_stateful.py)
WORKERS = 2
STUCK = ("bridge_short", "bridge_short_unsensed")


def _longest(values: Iterable[float | None]) -> float:
    """The largest of the values measured (None: never caught, counted by safety.undetected)."""
    return round(max((value for value in values if value is not None), default=-1.0), 3)


# Any: the night's report, the JSON safety_runs.night prints (tests/mp/safety_runs.py).
def _night(bed: int, seed: int, faulted: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="soma-bench-safety-") as flash:
        code = f"import safety_runs; safety_runs.night({bed}, {seed}, {faulted}, {HOURS})"
        return run_micropython(code, heap=HEAP, cwd=flash, timeout=4 * 3600)


def run() -> Iterator[Result]:
    compiled_tree()  # once, before the threads
    nights = [(bed, seed, faulted) for faulted in (True, False) for seed in SEEDS for bed in range(1, BEDS + 1)]
    with ThreadPoolExecutor(WORKERS) as pool:
        reports = list(pool.map(lambda night: _night(*night), nights))
    events = [event for report in reports for event in report["events"]]
    for report in reports:
        for at, rule, detail in report["oracle"]["first"]:
            print(
                f"safety breach: bed {report['bed']} seed {report['seed']} at {at} s: {rule} ({detail})",
                file=sys.stderr,
            )
    yield Result("safety.nights", len(reports), "nights")
    yield Result("safety.breaches", sum(report["oracle"]["breaches"] for report in reports), "breaches")
    yield Result("safety.invariant_breaks", sum(sum(r["violated"].values()) for r in reports), "sleeps")
    yield Result("safety.false_trips", sum(len(r["latches"]) for r in reports if not r["faulted"]), "faults")
    for fault in sorted({event["fault"] for event in events}):  # every class a faulted night injects
        caught = [event for event in events if event["fault"] == fault and event["detected_after"] is not None]
        if fault == "bottle":  # the trip: from the reading at 42 degC
            after = [event["detected_after"] - event["reading_after"] for event in caught]
            yield Result("safety.detect_s_max_overtemp", _longest(after), "s")
        else:
            yield Result(f"safety.detect_s_max_{fault}", _longest(event["detected_after"] for event in caught), "s")
    yield Result("safety.undetected", sum(1 for event in events if event["detected_after"] is None), "faults")
    stuck = [event for event in events if event["fault"] in STUCK]
    yield Result("safety.max_true_pad_c", round(max(event["max_pad_c"] for event in stuck), 2), "degC")
    sensed = [event["detected_after"] for event in events if event["fault"] == "bridge_short"]
    yield Result("safety.stuck_heater_detect_s", _longest(sensed), "s")
    yield Result("safety.fuses_blown", sum(sum(report["fuses"]) for report in reports), "fuses")
