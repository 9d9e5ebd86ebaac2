"""Thermistor ADC code -> milli-degrees Celsius, without floats on the sample path.

The Steinhart-Hart curve of one sensor (calibrated coefficients, or the nominal B model)
is evaluated once, at construction, into a table of 129 points over the 16-bit ADC range;
a reading then costs two table lookups and an integer interpolation. With the SB-1 divider
a table step spans about 0.8 K near room temperature, where linear interpolation is exact
to about 10 mK (tests/test_firmware_ranges.py measures it).
"""

import math
from array import array

from micropython import const

from board import ADC_FULL_SCALE, NTC_B_KELVIN, NTC_PULLUP_OHM, NTC_R25_OHM

_STEPS = const(128)
_SHIFT = const(9)  # 65536 / _STEPS codes per table step
_FRACTION = const(0x1FF)
_UNIT_MC = const(5)  # table resolution: 5 mK
_KELVIN_OFFSET = 273.15


def nominal_coefficients():
    """Steinhart-Hart (a, b, c) of the datasheet B model: 1/T = 1/T25 + ln(R/R25)/B."""
    b = 1.0 / NTC_B_KELVIN
    return (1.0 / 298.15 - math.log(NTC_R25_OHM) * b, b, 0.0)


def resistance_ohm(code):
    """The NTC resistance that the divider turns into this ADC code (code clamped inside the range)."""
    code = min(max(code, 1), ADC_FULL_SCALE - 1)
    return NTC_PULLUP_OHM * code / (ADC_FULL_SCALE - code)


class Thermistor:
    """One sensor's curve as a fixed-point table: int16 in units of _UNIT_MC, so temperatures
    saturate at +-163 degC, far outside the open/short window and the trip."""

    def __init__(self, a, b, c):
        self.table = array("h", bytes(2 * (_STEPS + 1)))
        for step in range(_STEPS + 1):
            ln_r = math.log(resistance_ohm(step << _SHIFT))
            inverse = a + b * ln_r + c * ln_r * ln_r * ln_r
            if not 1e-4 < inverse < 1e-2:  # beyond 100 K .. 10 000 K the coefficients are nonsense
                raise ValueError("thermistor coefficients give no temperature at code %d" % (step << _SHIFT))
            units = int((1.0 / inverse - _KELVIN_OFFSET) * (1000.0 / _UNIT_MC) + 0.5)
            self.table[step] = min(max(units, -32768), 32767)

    def millicelsius(self, code):
        """Temperature of an ADC code (0..65535) in milli-degC. Allocates nothing."""
        table = self.table
        step = code >> _SHIFT
        low = table[step]
        return (low + (((table[step + 1] - low) * (code & _FRACTION)) >> _SHIFT)) * _UNIT_MC
