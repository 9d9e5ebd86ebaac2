"""Pad temperature control laws, in integer arithmetic (10 Hz, one instance per zone).

A control law is any object with `reset(measured_mc)` and `update(setpoint_mc,
measured_mc) -> permille` (signed drive, -1000 cool .. +1000 heat); the zone holds
one and the application may swap it (PID, relay autotune).

Units: temperatures in milli-degC, drive in permille, gains in Q16 fixed point per
control step: kp in permille/mC, ki in permille/(mC*step), kd in permille/(mC/step).
Products stay below 2^30 (the ESP32 port's small-int range) because the error fed to
each term is clamped and the gains are bounded at construction.
"""

from array import array

from micropython import const

DRIVE_MAX = const(1000)
GAIN_MAX_Q16 = const(100_000)  # 1.5 permille per mC: far above any stable pad tuning
_ERROR_CLAMP_MC = const(10_000)  # 10 K: beyond it every useful law is saturated anyway
_INTEGRAL_MAX = const(DRIVE_MAX << 16)


def _check_gain(name, value):
    if not isinstance(value, int) or not 0 <= value <= GAIN_MAX_Q16:
        raise ValueError("%s must be an integer 0..%d (Q16)" % (name, GAIN_MAX_Q16))


def clamp(value, low, high):
    return low if value < low else high if value > high else value


class ControlLaw:
    """What a zone needs of a control law; `done` turns True when a finite experiment ends."""

    done = False

    def reset(self, measured_mc):
        pass

    def update(self, setpoint_mc, measured_mc):
        raise NotImplementedError


class Pid(ControlLaw):
    """PID with derivative on measurement and conditional-integration anti-windup."""

    def __init__(self, kp_q16, ki_q16, kd_q16):
        _check_gain("kp", kp_q16)
        _check_gain("ki", ki_q16)
        _check_gain("kd", kd_q16)
        self.kp = kp_q16
        self.ki = ki_q16
        self.kd = kd_q16
        self._integral = 0  # permille in Q16
        self._last_mc = 0

    def reset(self, measured_mc):
        self._integral = 0
        self._last_mc = measured_mc

    def update(self, setpoint_mc, measured_mc):
        error = clamp(setpoint_mc - measured_mc, -_ERROR_CLAMP_MC, _ERROR_CLAMP_MC)
        change = clamp(measured_mc - self._last_mc, -_ERROR_CLAMP_MC, _ERROR_CLAMP_MC)
        self._last_mc = measured_mc
        proportional = (self.kp * error) >> 16
        derivative = -((self.kd * change) >> 16)
        integral = clamp(self._integral + self.ki * error, -_INTEGRAL_MAX, _INTEGRAL_MAX)
        drive = proportional + derivative + (integral >> 16)
        # Integrate only while that does not push further into saturation.
        if -DRIVE_MAX < drive < DRIVE_MAX or (drive >= DRIVE_MAX) != (error > 0):
            self._integral = integral
        return clamp(drive, -DRIVE_MAX, DRIVE_MAX)


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
