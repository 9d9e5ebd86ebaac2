"""Thermal model of one bed for firmware tests: two pads, a sleeper, the sensors, and faults.

Per zone: C dT/dt = P_drive + P_sleeper - G (T - T_ambient), with the thermistor lagging
the pad by a first-order SENSOR_LAG_S. Heating turns drive into heat one to one; the
Peltier cools at COOLING_COP of its electrical power. Numbers are a water-filled pad on
a mattress: ~3 kJ/K, 4 W/K to the room, a time constant of about 12 minutes.
"""

from scripted_board import ntc_code

from board import ADC_AMBIENT, ADC_BCG, ADC_CURRENT_LEFT, DRIVE_FULL_POWER_W, SUPPLY_MV

CAPACITY_J_PER_K = 3000.0
LOSS_W_PER_K = 4.0
SLEEPER_W = 20.0
SENSOR_LAG_S = 8.0
COOLING_COP = 0.6
CURRENT_FULL_SCALE_A = 12.0
STEP_US = 100_000


class PadPlant:
    def __init__(self, board, ambient_c=22.0, start_c=None, sleeper=True, r25=(10000.0,) * 3, beta=(3950.0,) * 3):
        self.board = board
        self.ambient_c = ambient_c
        start = ambient_c if start_c is None else start_c
        self.pad_c = [start, start]
        self.sensor_c = [start, start]
        self.sleeper = sleeper
        self.r25 = r25
        self.beta = beta
        self.faults = {}  # "open"/"short"/"frozen": set of sensors; "disconnected"/"stuck": set of zones
        self._last_us = None
        self._noise = 12345
        self.max_pad_c = start
        self.update(0)

    def _jitter(self):
        # Two ADC codes of noise, from a tiny LCG (deterministic, and no allocation).
        self._noise = (self._noise * 1103515245 + 12345) & 0x7FFFFFFF
        return (self._noise >> 16) % 5 - 2

    def power_w(self, zone):
        drive = self.board.outputs.levels[zone] / 1000.0
        if zone in self.faults.get("disconnected", ()):
            drive = 0.0
        if zone in self.faults.get("stuck", ()):
            drive = 1.0
        electrical = abs(drive) * DRIVE_FULL_POWER_W
        return electrical if drive >= 0 else -electrical * COOLING_COP

    def update(self, now_us):
        """Advance to now_us (at most 10 times a simulated second) and set the ADC codes."""
        if self._last_us is not None and now_us - self._last_us < STEP_US:
            return
        dt = 0.0 if self._last_us is None else (now_us - self._last_us) / 1e6
        self._last_us = now_us
        if dt > 0:
            for zone in range(2):
                heat = self.power_w(zone) + (SLEEPER_W if self.sleeper else 0.0)
                self.pad_c[zone] += dt * (heat - LOSS_W_PER_K * (self.pad_c[zone] - self.ambient_c)) / CAPACITY_J_PER_K
                self.sensor_c[zone] += (self.pad_c[zone] - self.sensor_c[zone]) * min(1.0, dt / SENSOR_LAG_S)
                self.max_pad_c = max(self.max_pad_c, self.pad_c[zone])
        codes = self.board.adc.codes
        temps = (self.sensor_c[0], self.sensor_c[1], self.ambient_c)
        for sensor in range(3):
            if sensor in self.faults.get("frozen", ()):
                continue
            code = ntc_code(temps[sensor], self.r25[sensor], self.beta[sensor]) + self._jitter()
            if sensor in self.faults.get("open", ()):
                code = 65535
            elif sensor in self.faults.get("short", ()):
                code = 0
            codes[sensor] = min(65535, max(0, code))
        for zone in range(2):
            amps = abs(self.power_w(zone)) / (SUPPLY_MV / 1000.0) if self.power_w(zone) > 0 else 0.0
            codes[ADC_CURRENT_LEFT + zone] = min(65535, int(amps / CURRENT_FULL_SCALE_A * 65535))
        codes[ADC_BCG] = 32768 + self._jitter() * 50

    def inject(self, kind, index):
        self.faults.setdefault(kind, set()).add(index)

    def heal(self, kind, index):
        self.faults.get(kind, set()).discard(index)


assert ADC_AMBIENT == 2
