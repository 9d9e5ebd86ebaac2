"""Drift-free fixed-rate loop on the board's wrapping microsecond ticks.

Deadlines advance by exactly one period (ticks_add), so lateness never accumulates;
after a long stall the loop drops the missed ticks instead of bursting. Garbage
collection runs in the idle time after a tick body, never inside one. Lateness and body
time go into fixed histograms (no allocation) for telemetry and the benchmarks. One alarm
can fire between ticks, at a given clock reading: for actions that must happen at an
instant finer than the tick (the ushering's start on every bed at once), as a hardware
timer would.
"""

import gc
from array import array

from micropython import const

PERIOD_US = const(10_000)  # 100 Hz
BUCKET_US = const(20)  # histogram resolution
_BUCKETS = const(128)  # the last bucket collects everything from 2.54 ms up
_GC_IDLE_US = const(4_000)  # a collection of the 96 KiB heap fits well inside this
_GC_EVERY_TICKS = const(100)  # collect about once a second, before the heap fills
_RESYNC_PERIODS = const(5)


class Scheduler:
    def __init__(self, clock, period_us=PERIOD_US):
        self._clock = clock
        self.period_us = period_us
        self.running = True
        self.ticks = 0  # small int: wraps into the sign bit only after 124 days at 100 Hz
        self.overruns = 0
        self.gc_runs = 0
        self.gc_pause_max_us = 0
        self.heap_used = 0  # bytes in use right after the last collection
        self.alloc_bytes_per_s = 0  # over the last interval between collections
        self._collected_at = 0
        self.late_max_us = 0
        self.body_max_us = 0
        self.late_histogram = array("I", bytes(4 * _BUCKETS))
        self.body_histogram = array("I", bytes(4 * _BUCKETS))
        self._since_gc = 0
        self._alarm = None
        self._alarm_at = 0

    def alarm(self, at_ticks, action):
        """Call action() in the idle time when the clock reads `at_ticks` (replaces any alarm)."""
        self._alarm_at = at_ticks
        self._alarm = action

    def run(self, tick):
        """Call tick(count) every period until `running` is cleared (or tick raises)."""
        self.running = True
        clock = self._clock
        deadline = clock.ticks_us()
        while self.running:
            start = clock.ticks_us()
            late = clock.ticks_diff(start, deadline)
            if late < 0:
                late = 0
            self.late_histogram[min(late // BUCKET_US, _BUCKETS - 1)] += 1
            if late > self.late_max_us:
                self.late_max_us = late
            tick(self.ticks)
            end = clock.ticks_us()
            body = clock.ticks_diff(end, start)
            self.body_histogram[min(body // BUCKET_US, _BUCKETS - 1)] += 1
            if body > self.body_max_us:
                self.body_max_us = body
            self.ticks += 1
            deadline = clock.ticks_add(deadline, self.period_us)
            remaining = clock.ticks_diff(deadline, end)
            if remaining < 0:
                self.overruns += 1
                if remaining < -_RESYNC_PERIODS * self.period_us:
                    deadline = end
                continue
            self._since_gc += 1
            if remaining > _GC_IDLE_US and self._since_gc >= _GC_EVERY_TICKS:
                self._collect()
                remaining = clock.ticks_diff(deadline, clock.ticks_us())
            action = self._alarm
            if action is not None and clock.ticks_diff(self._alarm_at, deadline) < 0:  # due this period
                until = clock.ticks_diff(self._alarm_at, clock.ticks_us())
                if until > 0:
                    clock.sleep_us(until)
                self._alarm = None
                action()
                remaining = clock.ticks_diff(deadline, clock.ticks_us())
            if remaining > 0:
                clock.sleep_us(remaining)

    def _collect(self):
        clock = self._clock
        start = clock.ticks_us()
        # What the heap grew by since the last collection is what the loop allocated.
        grown = gc.mem_alloc() - self.heap_used
        gc.collect()
        pause = clock.ticks_diff(clock.ticks_us(), start)
        if self.gc_runs:
            elapsed_us = clock.ticks_diff(start, self._collected_at)
            if elapsed_us > 0:
                self.alloc_bytes_per_s = grown * 1000 // (elapsed_us // 1000 or 1)
        self._collected_at = start
        self.gc_runs += 1
        self.heap_used = gc.mem_alloc()
        self._since_gc = 0
        if pause > self.gc_pause_max_us:
            self.gc_pause_max_us = pause
