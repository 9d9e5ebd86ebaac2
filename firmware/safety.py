"""Safety supervisor: owns the thermal drive outputs and trusts nobody else.

Control laws, bench overrides and programs only *request* drive (`request`); every
10 Hz reading the supervisor evaluates its rules and writes what it allows to the
H-bridges (`step`). It starts disarmed (safe boot: drive off until the self-checks pass)
and each fault below is latched, reported through `report(code, active, value)`, and
cleared only by `clear()` once its cause is gone.

Fault codes (bit numbers of the fault mask) and their bounds, at 10 readings a second:
  OVERTEMP          any pad sensor >= trip (42 degC): all drive off at that reading
  SENSOR_LEFT/RIGHT pad thermistor open or short (ADC window, 0.2 s): its zone off
  SENSOR_AMBIENT    ambient thermistor open or short: reported
  NO_RISE_*         heating below target without gaining runaway_rise_mc in runaway_rise_window_s
  OFF_BAND_*        settled at target, then outside +-runaway_band_mc for runaway_band_window_s
  FROZEN_*          identical readings for frozen_window_s while driving
  DEADMAN           no drive request for deadman_ms (3 s): all drive off
  AUTO_OFF          no program or host refresh for auto_off_min (12 h): heating off (cooling
                    allowed); clears itself on the next refresh
  SELF_TEST         boot self-checks failed: the supervisor never arms
"""

from array import array

from micropython import const

from board import OUT_DRIVE_LEFT, OUT_DRIVE_RIGHT

OVERTEMP = const(0)
SENSOR_LEFT = const(1)
SENSOR_RIGHT = const(2)
SENSOR_AMBIENT = const(3)
NO_RISE_LEFT = const(4)
NO_RISE_RIGHT = const(5)
OFF_BAND_LEFT = const(6)
OFF_BAND_RIGHT = const(7)
FROZEN_LEFT = const(8)
FROZEN_RIGHT = const(9)
DEADMAN = const(10)
AUTO_OFF = const(11)
SELF_TEST = const(12)

FAULT_NAMES = (
    "overtemp",
    "sensor_left",
    "sensor_right",
    "sensor_ambient",
    "no_rise_left",
    "no_rise_right",
    "off_band_left",
    "off_band_right",
    "frozen_left",
    "frozen_right",
    "deadman",
    "auto_off",
    "self_test",
)

STEPS_PER_S = const(10)
_ALL_DRIVE = const((1 << OVERTEMP) | (1 << DEADMAN) | (1 << SELF_TEST))
_ZONE_FAULTS = (
    (1 << SENSOR_LEFT) | (1 << NO_RISE_LEFT) | (1 << OFF_BAND_LEFT) | (1 << FROZEN_LEFT),
    (1 << SENSOR_RIGHT) | (1 << NO_RISE_RIGHT) | (1 << OFF_BAND_RIGHT) | (1 << FROZEN_RIGHT),
)
_HEAT_CHECK_PERMILLE = const(500)  # heating this hard must show a rise
_FROZEN_CHECK_PERMILLE = const(300)  # driving this hard must move the reading
_TRIP_HYSTERESIS_MC = const(2_000)  # OVERTEMP clears only this far below the trip
_DRIVES = (OUT_DRIVE_LEFT, OUT_DRIVE_RIGHT)


class Supervisor:
    def __init__(self, config, outputs, report):
        self.limits = config
        self._outputs = outputs
        self._report = report
        self._rise_steps = config["runaway_rise_window_s"] * STEPS_PER_S
        self._band_steps = config["runaway_band_window_s"] * STEPS_PER_S
        self._frozen_steps = config["frozen_window_s"] * STEPS_PER_S
        self._deadman_steps = (config["deadman_ms"] + 99) // 100
        self._auto_off_steps = config["auto_off_min"] * 60 * STEPS_PER_S
        self.armed = False
        self.latched = 0
        self.active = 0  # causes present at the last step
        self.requested = array("i", [0, 0])
        self.applied = array("i", [0, 0])
        self._requested_at = array("i", [0, 0])
        self._refreshed_at = 0
        # per zone: rise reference temperature and step (-1: not heating), settled flag,
        # steps outside the band, last code and steps it has not changed
        self._rise_from = array("i", [0, 0])
        self._rise_at = array("i", [-1, -1])
        self._settled = array("b", [0, 0])
        self._setpoint = array("i", [0, 0])
        self._off_band = array("i", [0, 0])
        self._last_code = array("i", [-1, -1])
        self._same_code = array("i", [0, 0])
        self.step_count = 0
        self.hottest_mc = 0

    def arm(self):
        """Permit drive: the boot self-checks passed."""
        if not self.latched & (1 << SELF_TEST):
            self.armed = True

    def fail_self_test(self, value):
        self._latch(SELF_TEST, value)

    def request(self, zone, permille):
        """Ask for drive on a zone (control law or bench override); refreshes the dead-man."""
        self.requested[zone] = permille
        self._requested_at[zone] = self.step_count

    def refresh(self):
        """A program or the host is active: restarts the 12 h heating auto-off timer."""
        self._refreshed_at = self.step_count

    def _latch(self, code, value):
        bit = 1 << code
        if not self.latched & bit:
            self.latched |= bit
            self._report(code, 1, value)

    def step(self, temps_mc, codes, window_faults, setpoints_mc):
        """One 10 Hz reading: evaluate every rule, then write the allowed drive."""
        self.step_count += 1
        now = self.step_count
        limits = self.limits
        active = 0
        # A reading from outside the ADC window is a sensor fault, not a temperature.
        hottest = -(1 << 29)
        for zone in range(2):
            if limits["adc_short_below"] <= codes[zone] <= limits["adc_open_above"] and temps_mc[zone] > hottest:
                hottest = temps_mc[zone]
        self.hottest_mc = hottest
        if hottest >= limits["trip_mc"]:
            active |= 1 << OVERTEMP
            self._latch(OVERTEMP, hottest)
        for sensor in range(3):
            if window_faults & (1 << sensor):
                active |= 1 << (SENSOR_LEFT + sensor)
                self._latch(SENSOR_LEFT + sensor, codes[sensor])
        if now - self._requested_at[0] > self._deadman_steps or now - self._requested_at[1] > self._deadman_steps:
            active |= 1 << DEADMAN
            self._latch(DEADMAN, now)
        auto_off = now - self._refreshed_at > self._auto_off_steps
        if auto_off:
            active |= 1 << AUTO_OFF
            self._latch(AUTO_OFF, now)
        elif self.latched & (1 << AUTO_OFF):
            self.latched &= ~(1 << AUTO_OFF)
            self._report(AUTO_OFF, 0, 0)
        self.active = active
        for zone in range(2):
            drive = self.requested[zone]
            if not self.armed or self.latched & (_ALL_DRIVE | _ZONE_FAULTS[zone]) or (auto_off and drive > 0):
                drive = 0
                self._forget_zone(zone)  # the runaway rules judge only drive the supervisor allows
            else:
                self._watch_zone(zone, temps_mc[zone], codes[zone], setpoints_mc[zone], now)
                if self.latched & _ZONE_FAULTS[zone]:
                    drive = 0
            self.applied[zone] = drive
            self._outputs.set(_DRIVES[zone], drive)

    def _forget_zone(self, zone):
        self._rise_at[zone] = -1
        self._settled[zone] = 0
        self._off_band[zone] = 0
        self._same_code[zone] = 0

    def _watch_zone(self, zone, temp, code, setpoint, now):
        limits = self.limits
        drive = self.applied[zone]
        if setpoint != self._setpoint[zone]:
            self._setpoint[zone] = setpoint
            self._settled[zone] = 0
            self._off_band[zone] = 0
        # Heating below target must make progress.
        if drive >= _HEAT_CHECK_PERMILLE and temp < setpoint - limits["runaway_band_mc"]:
            if self._rise_at[zone] < 0 or temp >= self._rise_from[zone] + limits["runaway_rise_mc"]:
                self._rise_from[zone] = temp
                self._rise_at[zone] = now
            elif now - self._rise_at[zone] > self._rise_steps:
                self._latch(NO_RISE_LEFT + zone, temp)
        else:
            self._rise_at[zone] = -1
        # Once at target, staying away from it is a runaway too (e.g. a heater stuck on).
        if -limits["runaway_band_mc"] <= temp - setpoint <= limits["runaway_band_mc"]:
            self._settled[zone] = 1
            self._off_band[zone] = 0
        elif self._settled[zone]:
            self._off_band[zone] += 1
            if self._off_band[zone] > self._band_steps:
                self._latch(OFF_BAND_LEFT + zone, temp)
        # A live sensor's averaged code always moves a little while the pad is driven.
        if code != self._last_code[zone] or -_FROZEN_CHECK_PERMILLE < drive < _FROZEN_CHECK_PERMILLE:
            self._last_code[zone] = code
            self._same_code[zone] = 0
        else:
            self._same_code[zone] += 1
            if self._same_code[zone] > self._frozen_steps:
                self._latch(FROZEN_LEFT + zone, code)

    def clear(self, mask):
        """Clear latched faults in mask whose cause is gone; return (cleared, still latched)."""
        cleared = 0
        for code in range(len(FAULT_NAMES)):
            bit = 1 << code
            if mask & bit and self.latched & bit and not self.active & bit and code not in (SELF_TEST, AUTO_OFF):
                if code == OVERTEMP and self.hottest_mc > self.limits["trip_mc"] - _TRIP_HYSTERESIS_MC:
                    continue
                self.latched &= ~bit
                cleared |= bit
                self._report(code, 0, 0)
        return cleared, self.latched

    def all_off(self):
        """Emergency: drive off now, whatever the rules say."""
        self.armed = False
        self.requested[0] = self.requested[1] = 0
        self._outputs.all_off()
