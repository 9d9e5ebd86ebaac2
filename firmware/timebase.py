"""Wrap-safe 64-bit local time from the board's wrapping microsecond ticks.

`now_us()` must run at least once per half tick period (every ~8.9 minutes on the ESP32,
whose ticks_us wraps every ~17.9 minutes); the application calls it every second. Past
2^30 us the value is a heap big int on the ESP32, so it stays off the sample path.
"""


class LocalTime:
    def __init__(self, clock):
        self._clock = clock
        self._last = clock.ticks_us()
        self._us = 0

    def now_us(self):
        """Microseconds since boot."""
        now = self._clock.ticks_us()
        self._us += self._clock.ticks_diff(now, self._last)
        self._last = now
        return self._us

    def at_ticks(self, ticks):
        """The local time (us since boot) of a recent reading `ticks` of the board clock."""
        return self.now_us() - self._clock.ticks_diff(self._last, ticks)
