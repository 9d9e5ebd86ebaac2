"""The 100 Hz sample path: every ADC channel once per tick, allocation-free.

Thermistor codes are averaged over 10 samples (a 10 Hz reading, which also filters
noise) and converted through each sensor's fixed-point table. Each thermistor sample is
also checked against the open/short ADC window; `window_faults` has a bit per sensor
whose readings stayed outside the window for _OPEN_SHORT_SAMPLES consecutive ticks.
The BCG channel's latest code is in `raw` (the sensing pipeline will take it from there).
"""

from array import array

from micropython import const

from board import (
    ADC_AMBIENT,
    ADC_BCG,
    ADC_CURRENT_LEFT,
    ADC_CURRENT_RIGHT,
    ADC_PAD_LEFT,
    ADC_PAD_RIGHT,
    CURRENT_FULL_SCALE_MA,
)

_THERMISTORS = const(3)  # pad left, pad right, ambient: ADC channels 0..2
AVERAGE = const(10)  # samples per 10 Hz reading
_OPEN_SHORT_SAMPLES = const(20)  # 0.2 s: detected well inside the 0.5 s the zone must be off by


class Sensors:
    def __init__(self, adc, open_above, short_below):
        self._adc = adc
        self.thermistors = []  # a Thermistor per sensor: the application sets them from the calibration
        self.open_above = open_above
        self.short_below = short_below
        self.raw = array("H", bytes(2 * 6))  # last code of every channel
        self._sums = array("i", bytes(4 * _THERMISTORS))
        self.codes = array("i", bytes(4 * _THERMISTORS))  # last 10-sample average code
        self.temps_mc = array("i", bytes(4 * _THERMISTORS))  # last 10 Hz reading, milli-degC
        self.currents_ma = array("i", bytes(4 * 2))
        self._outside = array("H", bytes(2 * _THERMISTORS))
        self.window_faults = 0
        self._phase = 0
        self.readings = 0  # 10 Hz readings completed

    def sample(self):
        """Read every channel once. Returns True when a new 10 Hz reading is ready."""
        adc = self._adc  # calling adc.read directly: a bound method object would be allocated
        raw = self.raw
        for channel in range(_THERMISTORS):  # ADC_PAD_LEFT, ADC_PAD_RIGHT, ADC_AMBIENT
            code = adc.read(channel)
            raw[channel] = code
            self._sums[channel] += code
            if code > self.open_above or code < self.short_below:
                if self._outside[channel] < _OPEN_SHORT_SAMPLES:
                    self._outside[channel] += 1
                    if self._outside[channel] == _OPEN_SHORT_SAMPLES:
                        self.window_faults |= 1 << channel
            else:
                self._outside[channel] = 0
                self.window_faults &= ~(1 << channel)
        raw[ADC_CURRENT_LEFT] = adc.read(ADC_CURRENT_LEFT)
        raw[ADC_CURRENT_RIGHT] = adc.read(ADC_CURRENT_RIGHT)
        raw[ADC_BCG] = adc.read(ADC_BCG)
        self._phase += 1
        if self._phase < AVERAGE:
            return False
        self._phase = 0
        for channel in range(_THERMISTORS):
            code = self._sums[channel] // AVERAGE
            self._sums[channel] = 0
            self.codes[channel] = code
            self.temps_mc[channel] = self.thermistors[channel].millicelsius(code)
        # CURRENT_FULL_SCALE_MA * 65535 stays below 2^30: no big ints.
        self.currents_ma[0] = (raw[ADC_CURRENT_LEFT] * CURRENT_FULL_SCALE_MA) >> 16
        self.currents_ma[1] = (raw[ADC_CURRENT_RIGHT] * CURRENT_FULL_SCALE_MA) >> 16
        self.readings += 1
        return True


assert (ADC_PAD_LEFT, ADC_PAD_RIGHT, ADC_AMBIENT) == (0, 1, 2)
