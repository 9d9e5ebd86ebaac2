"""An independent referee of the SPEC §3 safety rules, watching one bed from outside.

The oracle sees what the world sees of a bed: the true pad temperatures, the heat its drive
really puts into each pad (after the relay, the fuses and the faults), the heater enable
relay, which thermistors are really open or shorted, when the firmware's loop last showed
life (actuator and watchdog traffic), its boots, the host's requests that ask for heat and
the faults the firmware reports. It never reads the firmware's own judgement of a rule: it
fails a run on what the sleeper would feel.

Breaches (rule: what happened):
  overtemp_heat      heat with a true pad at or above the trip (42 degC) beyond one reading
  sensor_heat        heat on a zone whose thermistor is open or short, 0.5 s after the later of
                     the two began (a zone off within 0.5 s, whichever came second)
  loop_heat          heat more than 3.1 s after the firmware's loop last ran
  auto_off_heat      heat 12 h after the last intent to heat (a request, or a running program)
  boot_heat          heat in a boot before the self-checks could pass (every thermistor sound,
                     the pads plausible, for 3 readings)
  enable_with_fault  the relay closed while the firmware reports an all-drive fault latched

Written in the subset of Python that MicroPython runs too: the world (host/soma/sim/world.py)
uses it for every virtual bed, the firmware tests under MicroPython for the scripted board.
Times are seconds on the caller's clock.
"""

READING_S = 0.1  # the firmware's 10 Hz reading
SENSOR_S = 0.5  # SPEC: a zone off within 0.5 s of its thermistor going open or short
LOOP_S = 3.1  # SPEC: the dead-man's 3 s, and one reading
SELF_CHECK_S = 0.3  # the boot self-checks judge three readings
ENABLE_S = 0.25  # a reported fault and the relay travel different links: their skew
PLAUSIBLE_C = (0.0, 50.0)  # the self-checks' plausible pad range
RULES = ("overtemp_heat", "sensor_heat", "loop_heat", "auto_off_heat", "boot_heat", "enable_with_fault")
KEPT = 20  # breaches kept with their details (all are counted)
_TIME_SLACK_S = 1e-6  # readings 0.1 s apart differ by a hair less in binary floating point


class SafetyOracle:
    def __init__(self, name, trip_c, auto_off_s, all_drive_mask):
        self.name = name
        self.trip_c = trip_c
        self.auto_off_s = auto_off_s
        self.all_drive_mask = all_drive_mask
        self.counts = {}  # rule -> breaches (a breach is counted once per episode)
        for rule in RULES:
            self.counts[rule] = 0
        self.breaches = []  # the first KEPT: (time, rule, detail)
        self.observations = 0
        self.heat_s = 0.0  # seconds with heat on some zone
        self.max_pad_c = -300.0
        self.boots = 0
        self._open = {}  # rule -> True while an episode lasts
        self._last_t = None
        self._boot_at = None  # None: no boot seen yet (the run started with the unit up)
        self._sound_since = None  # since when the truth could pass the self-checks
        self._checks_passed = True
        self._loop_at = None
        self._intent_at = None
        self._programs = []  # (start, end) of programs that ran or will run
        self._hot_since = None
        self._sensor_bad_since = [None, None]
        self._heat_since = [None, None]
        self._reported = 0  # the latched fault mask the firmware last reported
        self._reported_at = None

    # ---- what the caller tells

    def boot(self, t):
        """The unit (re)started: outputs off, its self-checks ahead."""
        self.boots += 1
        self._boot_at = t
        self._checks_passed = False
        self._sound_since = None
        self._loop_at = t
        self._reported = 0

    def loop_ran(self, t):
        """Evidence the firmware's loop ran at t (a watchdog feed, an actuator update)."""
        self._loop_at = t

    def intent(self, t):
        """The host asked for heat at t (a set point, a program upload, an autotune, a bench
        heater step)."""
        self._intent_at = t

    def program(self, start, end):
        """A program runs from start to end: an intent to heat all along."""
        self._programs.append((start, end))
        if len(self._programs) > 8:
            self._programs.pop(0)

    def reported(self, t, latched_mask):
        """The latched fault mask the firmware reported at t (fault events, telemetry, info)."""
        if latched_mask & self.all_drive_mask and not self._reported & self.all_drive_mask:
            self._reported_at = t
        self._reported = latched_mask

    def new_peak(self):
        """Track max_pad_c afresh from now on: a part of the run of its own (a demo's night after
        the calibration bath held the pads at 42 degC). No rule reads it."""
        self.max_pad_c = -300.0

    def observe(self, t, pads_c, heat_w, enable, sensors_sound):
        """The truth at t: each pad's temperature (degC), the heat its drive puts in (W, from
        the supply: 0 when the relay or fuse is open), the relay (closed: True), and whether
        each thermistor (pad left, pad right, ambient) is sound (neither open nor short)."""
        self.observations += 1
        heat = (heat_w[0] > 0, heat_w[1] > 0)
        if self._last_t is not None and (heat[0] or heat[1]):
            self.heat_s += t - self._last_t
        self._last_t = t
        hottest = max(pads_c[0], pads_c[1])
        if hottest > self.max_pad_c:
            self.max_pad_c = hottest
        # The self-checks can pass once the truth has been sound for three readings.
        sound = sensors_sound[0] and sensors_sound[1] and sensors_sound[2]
        plausible = PLAUSIBLE_C[0] < pads_c[0] < PLAUSIBLE_C[1] and PLAUSIBLE_C[0] < pads_c[1] < PLAUSIBLE_C[1]
        if sound and plausible:
            if self._sound_since is None:
                self._sound_since = t
            elif t - self._sound_since >= SELF_CHECK_S - _TIME_SLACK_S:
                self._checks_passed = True
        else:
            self._sound_since = None
        any_heat = heat[0] or heat[1]
        self._judge("boot_heat", t, any_heat and self._boot_at is not None and not self._checks_passed, "heat")
        if hottest >= self.trip_c:
            if self._hot_since is None:
                self._hot_since = t
        else:
            self._hot_since = None
        self._judge(
            "overtemp_heat",
            t,
            any_heat and self._hot_since is not None and t - self._hot_since > READING_S,
            f"pads {pads_c[0]:.2f} / {pads_c[1]:.2f} degC",
        )
        bad_zone = False
        for zone in range(2):
            if sensors_sound[zone]:
                self._sensor_bad_since[zone] = None
            elif self._sensor_bad_since[zone] is None:
                self._sensor_bad_since[zone] = t
            heat_since = self._heat_since[zone]
            if not heat[zone]:
                heat_since = None
            elif heat_since is None:
                heat_since = t
            self._heat_since[zone] = heat_since
            bad_since = self._sensor_bad_since[zone]
            if heat_since is not None and bad_since is not None and t - max(bad_since, heat_since) > SENSOR_S:
                bad_zone = True
        self._judge("sensor_heat", t, bad_zone, "zone thermistor open or short")
        self._judge(
            "loop_heat", t, any_heat and self._loop_at is not None and t - self._loop_at > LOOP_S, "loop silent"
        )
        for start, end in self._programs:
            if start <= t <= end:
                self._intent_at = t
        self._judge(
            "auto_off_heat",
            t,
            heat[0]
            and self._intent_at is not None
            and t - self._intent_at > self.auto_off_s + READING_S
            or heat[1]
            and self._intent_at is not None
            and t - self._intent_at > self.auto_off_s + READING_S,
            f"no intent since {t - (self._intent_at or 0):.0f} s",
        )
        self._judge(
            "enable_with_fault",
            t,
            enable
            and self._reported & self.all_drive_mask
            and self._reported_at is not None
            and t - self._reported_at > ENABLE_S,
            f"fault mask {self._reported}",
        )

    # ---- the verdict

    @property
    def breached(self):
        total = 0
        for rule in RULES:
            total += self.counts[rule]
        return total

    def summary(self):
        """Counts per rule, the first breaches, and what was watched."""
        return {
            "bed": self.name,
            "breaches": self.breached,
            "counts": dict(self.counts),
            "first": [list(item) for item in self.breaches],
            "observations": self.observations,
            "heat_s": round(self.heat_s, 3),
            "max_pad_c": round(self.max_pad_c, 3),
            "boots": self.boots,
        }

    def _judge(self, rule, t, breach, detail):
        if not breach:
            self._open[rule] = False
            return
        if self._open.get(rule):
            return  # the same episode
        self._open[rule] = True
        self.counts[rule] += 1
        if len(self.breaches) < KEPT:
            self.breaches.append((round(t, 3), rule, f"{self.name}: {detail}"))
