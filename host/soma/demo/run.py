"""`soma demo` from start to end: a night in a Soma Sanctuary on virtual beds.

Blank virtual beds and the calibration bath come up; then, as on a factory floor and in a
bedroom: every bed is flashed (in parallel), calibrated (all in the bath at once, its pads'
physics fast-forwarded), bench-tested (the plan's steps that need no fixture, in parallel)
(soma.demo.stages), provisioned into one sanctuary, given a night program and run through
the night (soma.demo.night). What was measured becomes the summary (every figure against
its bar, soma.demo.judging) and the report (soma.demo.report), with the verdict of every
bed's safety oracle (host/soma/sim/safety_oracle.py) on the whole run.
"""

from collections.abc import Callable
from pathlib import Path

from soma.demo.night import run_night
from soma.demo.outcome import BedOutcome, DemoOutcome
from soma.demo.report import write_report
from soma.demo.settings import BED_FAULTS, FAULTS, DemoSettings
from soma.demo.stages import (
    Stage,
    back_to_room,
    bench_all,
    calibrate_all,
    clear_after_refusal,
    flash_all,
    records_in,
)
from soma.errors import SomaError


def run_demo(settings: DemoSettings, say: Callable[[str], object] = print) -> DemoOutcome:
    """Run the whole demo; `say(text)` reports progress. Returns the DemoOutcome with the
    report written to settings.out_dir."""
    from soma.sim.sanctuary import Sanctuary

    if settings.inject is not None and settings.inject not in FAULTS:
        raise SomaError(f"--inject: unknown fault {settings.inject!r} (one of: {', '.join(FAULTS)})")
    if (settings.inject in BED_FAULTS or settings.inject == "root-loss") and settings.beds < 2:
        raise SomaError(f"--inject {settings.inject} needs at least 2 beds")
    out_dir = Path(settings.out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SomaError(f"{out_dir}: cannot make the results directory ({exc.strerror or exc})") from None
    beds = [BedOutcome(n) for n in range(1, settings.beds + 1)]
    stages: dict[str, float] = {}
    records = records_in(out_dir)
    with Sanctuary(beds=settings.beds, seed=settings.seed, flashed=False, sleepers=False) as sanctuary:
        with Stage(stages, "flash", say, f"flashing {settings.beds} blank beds in parallel"):
            flash_all(sanctuary, beds, records)
        with Stage(stages, "calibrate", say, "calibrating every bed in the bath at once"):
            calibrate_all(sanctuary, beds, records)
        back_to_room(sanctuary)
        clear_after_refusal(sanctuary, beds)
        with Stage(stages, "bench", say, "bench-testing every bed (JUnit XML and JSON in bench/)"):
            bench_all(sanctuary, beds, records, out_dir / "bench")
        back_to_room(sanctuary)
        outcome = run_night(sanctuary, settings, beds, say, stages)
    say("writing the report")
    assert outcome.report is not None, "run_night gives the night's report"
    outcome.paths = write_report(outcome.report, out_dir)
    return outcome
