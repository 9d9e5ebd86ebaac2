"""Simulator benchmarks: 16 flashed virtual beds running together on this machine.

- sim.tick_overrun_ratio: all beds' overrun ticks over all their ticks (GC included)
- sim.tick_overrun_ratio_worst: the worst single bed
- sim.tick_jitter_p99_us: the worst bed's 99th-percentile tick lateness (20 us resolution)
- sim.bed_rss_mb: mean resident memory of one virtual bed's MicroPython process
- safety.breaches: what the beds' safety oracles saw over the whole run (bar 0; bench.record adds it)
"""

import tempfile
import time
from collections.abc import Iterator

from soma.sim.sanctuary import Sanctuary, loop_report

from . import Result

BEDS = 16
SECONDS = 60


def run() -> Iterator[Result]:
    with (
        tempfile.TemporaryDirectory(prefix="soma-bench-sim-") as root,
        Sanctuary(beds=BEDS, root=root, flashed=True) as sanctuary,
    ):
        time.sleep(SECONDS)
        reports = [loop_report(bed) for bed in sanctuary.beds]
    ticks = sum(report["ticks"] for report in reports)
    overruns = sum(report["overruns"] for report in reports)
    yield Result("sim.tick_overrun_ratio", overruns / ticks, "ratio")
    yield Result("sim.tick_overrun_ratio_worst", max(r["overruns"] / r["ticks"] for r in reports), "ratio")
    yield Result("sim.tick_jitter_p99_us", max(report["late_p99_us"] for report in reports), "us")
    yield Result("sim.bed_rss_mb", round(sum(r["rss_bytes"] for r in reports) / len(reports) / 2**20, 2), "MB")
