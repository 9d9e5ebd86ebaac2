"""Running a bench plan against one unit: every step in order, a step that cannot measure
failing with its reason while the plan goes on."""

import math
import time
from collections.abc import Callable

from soma.errors import SomaError
from soma.link.management import DeviceError, ManagementTimeout
from soma.station.bench.kinds import KINDS, Station, key_state
from soma.station.bench.plan import Plan
from soma.station.bench.report import BenchReport, Measurement, StepResult


def run_plan(plan: Plan, station: Station, progress: Callable[[int, int, str], object] | None = None) -> BenchReport:
    """Run every step of `plan` in order; a step that cannot measure fails with its reason
    and the plan goes on. Return the BenchReport."""
    report = BenchReport(plan.name, plan.version, started=time.time())
    station.report = report
    station.boot_events_before = len(station.boot_events())
    report.key_arrived = report.key_left = key_state(station.info())
    started = time.monotonic()
    for index, step in enumerate(plan.steps):
        if progress:
            progress(index, len(plan.steps), step.id)
        result = StepResult(step.id, step.kind)
        step_started = time.monotonic()
        try:
            values = KINDS[step.kind].measure(station, step.params)
        except (SomaError, ManagementTimeout, DeviceError, ValueError) as exc:
            result.error = str(exc) or type(exc).__name__
            values = {}
        for name in KINDS[step.kind].measures:
            low, high = step.limits.get(name, (None, None))
            result.measurements.append(Measurement(name, float(values.get(name, math.nan)), low, high))
        if result.error:
            result.measurements = [m for m in result.measurements if not math.isnan(m.value)]
        result.seconds = time.monotonic() - step_started
        report.steps.append(result)
    report.seconds = time.monotonic() - started
    return report
