"""Thermal and electrical model of one bed: two pads, a sleeper's warmth, the thermistors,
the heater current sense, the heater enable relay and the pads' thermal fuses (SB-1 rev B),
and injectable faults.

Per zone: C dT/dt = P_drive + P_sleeper - G (T - T_room); the thermistor lags the pad by
a first-order SENSOR_LAG_S. Heating turns drive into heat one to one; the Peltier cools
at COOLING_COP of its electrical power. Numbers are a water-filled pad on a mattress:
~3 kJ/K, 4 W/K to the room, a time constant of about 12 minutes. The relay (`enable`) is
in series with both H-bridges' supply: open, no drive and no fault heats. A pad's fuse
blows at FUSE_C and cuts that pad's supply for good (`fuse_blown`): the hardware's last
line, which reaching is a failure of every rule above it.

Written in the subset of Python that MicroPython runs too: the host simulator's world
uses it, and so do the firmware tests under MicroPython (tests/mp/pad_plant.py).
"""

import math

CAPACITY_J_PER_K = 3000.0
LOSS_W_PER_K = 4.0
SLEEPER_W = 20.0
SENSOR_LAG_S = 8.0
COOLING_COP = 0.6
DRIVE_FULL_POWER_W = 120.0
SUPPLY_V = 12.0
CURRENT_FULL_SCALE_A = 12.0
FUSE_C = 48.0
PULLUP_OHM = 10000.0
ADC_FULL_SCALE = 65535
BCG_MIDSCALE = 32768


def ntc_code(temp_c, r25=10000.0, beta=3950.0, gain=1.0, offset=0.0):
    """The SB-1 divider's ADC code for an NTC at temp_c (with the unit's R25, B and ADC error)."""
    resistance = r25 * math.exp(beta * (1.0 / (temp_c + 273.15) - 1.0 / 298.15))
    code = ADC_FULL_SCALE * resistance / (resistance + PULLUP_OHM) * gain + offset
    return min(ADC_FULL_SCALE, max(0, int(code + 0.5)))


class PadModel:
    """State of one bed's pads. Faults: self.faults[kind] is a set of sensor or zone indexes,
    kinds "open", "short", "frozen" (sensors 0..2: thermistor open, shorted, its reading stuck)
    and "disconnected" (no heat or cooling reaches the pad), "bridge_short" (the H-bridge
    conducts at full heat whatever it is told, while it has supply), "sense_open" (the current
    sense reads nothing) (zones 0, 1)."""

    def __init__(self, room_c=22.0, start_c=None, sleeper=True, r25=(10000.0,) * 3, beta=(3950.0,) * 3):
        start = room_c if start_c is None else start_c
        self.room_c = room_c
        self.pad_c = [start, start]
        self.sensor_c = [start, start]
        self.sleeper = sleeper
        self.r25 = r25
        self.beta = beta
        self.adc_gain = 1.0
        self.adc_offset = 0.0
        self.faults = {}
        self.enable = True  # the heater enable relay (the firmware drives it; a bare model has supply)
        self.fuse_blown = [False, False]
        self.max_pad_c = start
        self.codes = [0] * 6
        self._noise = 12345
        self._frozen = [0, 0, 0]

    def power_w(self, zone, drive_permille):
        """Heat into a pad (W) for a drive (permille), after the relay, the fuse and faults."""
        if not self.enable or self.fuse_blown[zone] or zone in self.faults.get("disconnected", ()):
            return 0.0
        drive = 1.0 if zone in self.faults.get("bridge_short", ()) else drive_permille / 1000.0
        electrical = abs(drive) * DRIVE_FULL_POWER_W
        return electrical if drive >= 0 else -electrical * COOLING_COP

    def step(self, seconds, drives):
        """Advance by `seconds` with both zones' drive (permille); refresh self.codes."""
        for zone in range(2):
            heat = self.power_w(zone, drives[zone]) + (SLEEPER_W if self.sleeper else 0.0)
            pad = self.pad_c[zone]
            pad += seconds * (heat - LOSS_W_PER_K * (pad - self.room_c)) / CAPACITY_J_PER_K
            self.pad_c[zone] = pad
            self.sensor_c[zone] += (pad - self.sensor_c[zone]) * min(1.0, seconds / SENSOR_LAG_S)
            if pad > self.max_pad_c:
                self.max_pad_c = pad
            if pad >= FUSE_C:
                self.fuse_blown[zone] = True
        temps = (self.sensor_c[0], self.sensor_c[1], self.room_c)
        for sensor in range(3):
            if sensor in self.faults.get("frozen", ()):
                self.codes[sensor] = self._frozen[sensor]
                continue
            code = ntc_code(temps[sensor], self.r25[sensor], self.beta[sensor], self.adc_gain, self.adc_offset)
            code += self._jitter()
            if sensor in self.faults.get("open", ()):
                code = ADC_FULL_SCALE
            elif sensor in self.faults.get("short", ()):
                code = 0
            self.codes[sensor] = self._frozen[sensor] = min(ADC_FULL_SCALE, max(0, code))
        for zone in range(2):  # the sense sits on the heating leg: cooling current does not pass it
            power = self.power_w(zone, drives[zone])
            amps = power / SUPPLY_V if power > 0 and zone not in self.faults.get("sense_open", ()) else 0.0
            self.codes[3 + zone] = min(ADC_FULL_SCALE, int(amps / CURRENT_FULL_SCALE_A * ADC_FULL_SCALE))
        self.codes[5] = BCG_MIDSCALE + self._jitter() * 50
        return self.codes

    def _jitter(self):
        # Two ADC codes of noise from a tiny LCG: deterministic and allocation-light.
        self._noise = (self._noise * 1103515245 + 12345) & 0x7FFFFFFF
        return (self._noise >> 16) % 5 - 2

    def inject(self, kind, index):
        self.faults.setdefault(kind, set()).add(index)

    def heal(self, kind, index):
        self.faults.get(kind, set()).discard(index)
