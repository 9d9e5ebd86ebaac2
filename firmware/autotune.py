"""Relay autotune of a zone's PID gains: imported only when a unit is asked to tune, so
the experiment's code does not sit in the heap the rest of the time."""

from array import array

from control import GAIN_MAX_Q16, ControlLaw, clamp


class RelayAutotune(ControlLaw):
    """Astrom-Hagglund relay experiment around the target, as Klipper's PID_CALIBRATE.

    The drive switches between +amplitude and -amplitude whenever the temperature crosses
    the target (with a small hysteresis); after PEAKS peaks the ultimate gain and period
    come from the median cycle, and `gains()` turns them into PID gains by the
    Tyreus-Luyben rule: less aggressive than Ziegler-Nichols, which overshoots a slow,
    lagging thermal pad.
    """

    PEAKS = 12

    def __init__(self, amplitude_permille, hysteresis_mc=100, step_ms=100):
        self.amplitude = amplitude_permille
        self.hysteresis = hysteresis_mc
        self.step_ms = step_ms
        self._heating = True
        self._steps = 0
        self._extreme = 0
        self._peak_values = array("i", bytes(4 * (self.PEAKS + 1)))
        self._peak_steps = array("i", bytes(4 * (self.PEAKS + 1)))
        self.peaks = 0

    def reset(self, measured_mc):
        self._heating = True
        self._steps = 0
        self._extreme = measured_mc
        self.peaks = 0
        self.done = False

    def update(self, setpoint_mc, measured_mc):
        self._steps += 1
        if self.done:
            return 0
        if self._heating:
            self._extreme = max(self._extreme, measured_mc)
            if measured_mc > setpoint_mc + self.hysteresis:
                self._peak(self._extreme)
                self._heating = False
                self._extreme = measured_mc
        else:
            self._extreme = min(self._extreme, measured_mc)
            if measured_mc < setpoint_mc - self.hysteresis:
                self._peak(self._extreme)
                self._heating = True
                self._extreme = measured_mc
        return self.amplitude if self._heating else -self.amplitude

    def _peak(self, value):
        if self.peaks <= self.PEAKS:
            self._peak_values[self.peaks] = value
            self._peak_steps[self.peaks] = self._steps
        self.peaks += 1
        self.done = self.peaks > self.PEAKS

    def gains(self):
        """(kp_q16, ki_q16, kd_q16) from the median oscillation; call when done."""
        import math

        swings = []
        periods = []
        # Peaks alternate max/min; skip the first (the approach) and use full cycles after it.
        for i in range(2, self.PEAKS + 1):
            swings.append(abs(self._peak_values[i] - self._peak_values[i - 1]))
            if i >= 3:
                periods.append(self._peak_steps[i] - self._peak_steps[i - 2])
        swings.sort()
        periods.sort()
        amplitude_mc = swings[len(swings) // 2] / 2
        period_steps = periods[len(periods) // 2]
        ku = 4.0 * self.amplitude / (math.pi * amplitude_mc)  # ultimate gain, permille per mC
        kp = ku / 2.2
        ti = 2.2 * period_steps
        td = period_steps / 6.3
        return (
            clamp(int(kp * 65536), 0, GAIN_MAX_Q16),
            clamp(int(kp / ti * 65536), 0, GAIN_MAX_Q16),
            clamp(int(kp * td * 65536), 0, GAIN_MAX_Q16),
        )
