"""Sixteen flashed virtual beds run together for half a minute on this 2-core machine: every bed
keeps its 100 Hz loop (overruns < 1 %, GC included), none restarts, all stay within the
heap budget."""

import time

from soma.sim.sanctuary import Sanctuary, loop_report
from soma.sim.virtual_bed import POWER_ON


def test_sixteen_beds_for_half_a_minute(tmp_path):
    with Sanctuary(beds=16, root=tmp_path, flashed=True) as sanctuary:
        time.sleep(30)
        reports = [loop_report(bed) for bed in sanctuary.beds]
        restarts = [sum(bed.line.resets.values()) - bed.line.resets[POWER_ON] for bed in sanctuary.beds]
    assert restarts == [0] * 16
    for report in reports:
        assert report["ticks"] >= 29 * 100
        assert report["overruns"] / report["ticks"] < 0.01
        assert report["heap_used_bytes"] <= 80 * 1024
