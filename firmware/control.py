"""Pad temperature control laws, in integer arithmetic (10 Hz, one instance per zone).

A control law is any object with `reset(measured_mc)` and `update(setpoint_mc,
measured_mc) -> permille` (signed drive, -1000 cool .. +1000 heat); the zone holds
one and the application may swap it (PID, relay autotune).

Units: temperatures in milli-degC, drive in permille, gains in Q16 fixed point per
control step: kp in permille/mC, ki in permille/(mC*step), kd in permille/(mC/step).
Products stay below 2^30 (the ESP32 port's small-int range) because the error fed to
each term is clamped and the gains are bounded at construction.
"""

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
