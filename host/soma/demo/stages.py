"""The factory stages of `soma demo` on virtual beds: every bed flashed and bench-tested in
parallel, calibrated all at once in the bath, each outcome recorded for traceability; and
the timing of each stage of the demo."""

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soma.demo.judging import BARS
from soma.errors import SomaError, one_line

if TYPE_CHECKING:
    from soma.demo.outcome import BedOutcome
    from soma.sim.sanctuary import Sanctuary, SimBed
    from soma.station.bench.report import BenchReport
    from soma.station.flashing import FlashResult
    from soma.station.traceability import Records

CALIBRATION_TIME_SCALE = 1000.0
BENCH_TIME_SCALE = 20.0
# The bench's heater steps heat this long: a minute of pad time at BENCH_TIME_SCALE (the plan's
# 15 s are for pads in real time).
BENCH_HEATER_STEP_S = 3.0


class Stage:
    """Times a stage and announces it."""

    def __init__(self, stages: dict[str, float], name: str, say: Callable[[str], object], text: str) -> None:
        self.stages, self.name, self.say, self.text = stages, name, say, text

    def __enter__(self) -> None:
        self.say(self.text)
        self.started = time.monotonic()

    def __exit__(self, *exc: Any) -> None:
        self.stages[self.name] = round(time.monotonic() - self.started, 1)


def records_in(out_dir: Path) -> "Records":
    from soma.station.traceability import Records

    return Records(str(out_dir / "traceability.sqlite"))


def flash_all(sanctuary: "Sanctuary", beds: Sequence["BedOutcome"], records: "Records") -> None:
    from soma.link.unit import UnitLink
    from soma.station.flashing import Image, flash

    image = Image.build()

    def one(bed: "SimBed") -> "FlashResult":
        with UnitLink(bed.port) as link:
            return flash(link, image)

    with ThreadPoolExecutor(max_workers=len(beds)) as pool:
        results = list(pool.map(one, sanctuary.beds))
    for outcome, result in zip(beds, results, strict=True):
        outcome.serial = result.serial
        records.record(result.serial, "flash", result.status, result.firmware_hash, "demo", "", result.__dict__)
        if result.status != "installed":
            raise SomaError(f"bed {outcome.number}: flashing ended {result.status}")


def calibrate_all(sanctuary: "Sanctuary", beds: Sequence["BedOutcome"], records: "Records") -> None:
    from soma.link.serial_link import SerialLink
    from soma.station.calibration import Bath, calibrate_units

    numbers = [bed.number for bed in beds]
    sanctuary.set_time_scale(CALIBRATION_TIME_SCALE)
    sanctuary.place_in_bath(*numbers)
    links = [SerialLink(bed.port) for bed in sanctuary.beds]
    try:
        with SerialLink(sanctuary.bath.port, 9600) as bath_link:
            results = calibrate_units([link.management() for link in links], Bath(bath_link), station="demo")
    finally:
        for link in links:
            link.close()
        sanctuary.place_in_bath(*numbers, inside=False)
    for outcome, result in zip(beds, results, strict=True):
        if isinstance(result, SomaError):
            outcome.calibration_problem = str(result)
            records.record(
                outcome.serial, "calibrate", "refused", "", "demo", "", {"error": str(result)}, reason=one_line(result)
            )
            continue
        outcome.calibration_error_c = result.max_error_after_c
        passed = result.max_error_after_c <= BARS["calibration_c"]
        records.record(
            result.serial, "calibrate", "pass" if passed else "fail", result.firmware_hash, "demo", "", result.__dict__
        )


def back_to_room(sanctuary: "Sanctuary", within_c: float = 1.0, timeout_s: float = 20.0) -> None:
    """Let every pad settle back to room temperature (the bath leaves them at its coolest
    point, the bench's runaway trip hot), its physics fast-forwarded, before the next stage."""
    sanctuary.set_time_scale(CALIBRATION_TIME_SCALE)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        worlds = [bed.world for bed in sanctuary.beds]
        if all(abs(pad - world.room_c) <= within_c for world in worlds for pad in world.model.pad_c):
            break
        time.sleep(0.2)


def clear_after_refusal(sanctuary: "Sanctuary", beds: Sequence["BedOutcome"]) -> None:
    """Calibration clears the faults it latched only when it completes: a unit it refused
    may still hold the bath's overtemp latch. Cleared as an operator would (`soma faults
    --clear`), the pads back at room temperature, so the unit goes on to the bench."""
    from soma.link.management import ALL_FAULTS
    from soma.link.serial_link import SerialLink

    for bed, outcome in zip(sanctuary.beds, beds, strict=True):
        if outcome.calibration_problem:
            with SerialLink(bed.port) as link:
                link.management().request("fault_clear", [ALL_FAULTS], timeout=3)


def bench_all(sanctuary: "Sanctuary", beds: Sequence["BedOutcome"], records: "Records", bench_dir: Path) -> None:
    from soma.link.serial_link import SerialLink
    from soma.station.bench.kinds import KINDS, Station
    from soma.station.bench.plan import DEFAULT_PLAN, Plan
    from soma.station.bench.report import write_reports
    from soma.station.bench.run import run_plan

    plan = Plan.load(DEFAULT_PLAN)
    plan = plan.only([step.id for step in plan.steps if not KINDS[step.kind].needs_fixture])
    plan = plan.with_params("heater_step", seconds=BENCH_HEATER_STEP_S)
    sanctuary.set_time_scale(BENCH_TIME_SCALE)
    bench_dir.mkdir(parents=True, exist_ok=True)

    def one(bed: "SimBed") -> "BenchReport":
        with SerialLink(bed.port) as link:
            client = link.management()
            report = run_plan(plan, Station(client))
            client.request("set_targets", [0, 0], timeout=3)  # off the bench: pads off until the night
            return report

    with ThreadPoolExecutor(max_workers=len(beds)) as pool:
        reports = list(pool.map(one, sanctuary.beds))
    for outcome, report in zip(beds, reports, strict=True):
        outcome.bench_verdict = "pass" if report.passed else "fail"
        outcome.bench_failures = [step.id for step in report.steps if not step.passed]
        write_reports(report, bench_dir / f"bed{outcome.number}.xml", bench_dir / f"bed{outcome.number}.json", "demo")
        records.record(  # partial: the demo has no fixture for the plan's fixture steps
            report.serial,
            "bench",
            outcome.bench_verdict,
            report.firmware_hash,
            "demo",
            "",
            report.as_dict(),
            scope=plan.scope,
            reason=f"failed: {', '.join(outcome.bench_failures)}" if outcome.bench_failures else "",
        )
