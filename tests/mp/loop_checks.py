"""The loop's timekeeping under MicroPython, on the scripted board's virtual clock (which
wraps at 2^30 like the ESP32's ticks_us). Each function prints a JSON report."""

import json

from scheduler import PERIOD_US, Scheduler
from scripted_board import VirtualClock
from timebase import LocalTime


def _run_for(clock, scheduler, seconds, body_us):
    end = clock.now_us + seconds * 1_000_000

    def on_sleep(now_us):
        if now_us >= end:
            scheduler.running = False

    clock.on_sleep = on_sleep
    scheduler.run(lambda tick: clock.spend_us(body_us(tick)))


def drift():
    """An hour of ticks whose bodies take 40..1840 us, starting 5 s before a ticks wrap."""
    clock = VirtualClock()
    scheduler = Scheduler(clock)
    _run_for(clock, scheduler, 3600, lambda tick: 40 + tick % 7 * 300)
    print(
        json.dumps(
            {
                "ticks": scheduler.ticks,
                "period_us": PERIOD_US,
                "overruns": scheduler.overruns,
                "late_max_us": scheduler.late_max_us,
            }
        )
    )


def overruns():
    """One 15 ms body in 10 s; then, on a fresh loop, one 500 ms stall."""
    clock = VirtualClock()
    late = Scheduler(clock)
    _run_for(clock, late, 10, lambda tick: 15_000 if tick == 100 else 50)
    stalled = Scheduler(clock)
    _run_for(clock, stalled, 10, lambda tick: 500_000 if tick == 10 else 50)
    print(
        json.dumps(
            {
                "ticks": late.ticks,
                "overruns": late.overruns,
                "late_max_us": late.late_max_us,
                "stalled_ticks": stalled.ticks,
                "stalled_overruns": stalled.overruns,
            }
        )
    )


def local_time():
    """Uneven steps (each under half the tick period) across many wraps of the 2^30 us ticks."""
    clock = VirtualClock()
    local = LocalTime(clock)
    total = 0
    mismatches = 0
    for step in range(1, 200):
        advance = (7_919 * step * 1000) % 400_000_000
        clock.sleep_us(advance)
        total += advance
        if local.now_us() != total:
            mismatches += 1
    print(json.dumps({"total_us": total, "mismatches": mismatches}))
