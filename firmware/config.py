"""Unit configuration: PID gains and safety limits, validated once, at construction.

The field names and order are the schema's ConfigData record; defaults are sized for a
mattress pad (thermal mass of a few kJ/K, time constant of many minutes).
"""

FIELDS = (
    "zone_left.kp_q16",
    "zone_left.ki_q16",
    "zone_left.kd_q16",
    "zone_right.kp_q16",
    "zone_right.ki_q16",
    "zone_right.kd_q16",
    "trip_mc",
    "setpoint_min_mc",
    "setpoint_max_mc",
    "adc_open_above",
    "adc_short_below",
    "runaway_rise_mc",
    "runaway_rise_window_s",
    "runaway_band_mc",
    "runaway_band_window_s",
    "frozen_window_s",
    "deadman_ms",
    "auto_off_min",
    "power_budget_w",
)

# default, lowest allowed, highest allowed, per field (a flat tuple: one heap object)
# fmt: off
_LIMITS = (
    40_000, 0, 100_000,  # zone_left.kp_q16: SIMC tuning of a 3 kJ/K, 4 W/K pad
    26, 0, 100_000,  # zone_left.ki_q16
    0, 0, 100_000,  # zone_left.kd_q16
    40_000, 0, 100_000,  # zone_right.kp_q16: SIMC tuning of a 3 kJ/K, 4 W/K pad
    26, 0, 100_000,  # zone_right.ki_q16
    0, 0, 100_000,  # zone_right.kd_q16
    42_000, 30_000, 42_000,  # trip_mc: never above the product's hard limit
    13_000, 13_000, 40_000,  # setpoint_min_mc
    40_000, 13_000, 40_000,  # setpoint_max_mc
    64_500, 32_768, 65_535,  # adc_open_above: above: NTC open (colder than about -40 degC)
    600, 0, 32_767,  # adc_short_below: below: NTC shorted (hotter than about 160 degC)
    1_000, 50, 5_000,  # runaway_rise_mc: heating must gain this much...
    300, 10, 3_600,  # runaway_rise_window_s: ...within this long while below target
    2_000, 200, 10_000,  # runaway_band_mc: once settled, leaving this band...
    600, 10, 7_200,  # runaway_band_window_s: ...for this long is a runaway
    60, 5, 600,  # frozen_window_s: identical readings for this long while driving
    3_000, 500, 3_000,  # deadman_ms
    720, 1, 720,  # auto_off_min: 12 h without a program or host refresh
    240, 0, 10_000,  # power_budget_w
)
# fmt: on


class Config:
    """Validated configuration, read as config["trip_mc"]; keys are FIELDS."""

    def __init__(self, overrides=None):
        values = {}
        for index in range(len(FIELDS)):
            values[FIELDS[index]] = _LIMITS[3 * index]
        for name, value in (overrides or {}).items():
            if name not in values:
                raise ValueError("unknown config key %r" % name)
            values[name] = value
        for index in range(len(FIELDS)):
            name, low, high = FIELDS[index], _LIMITS[3 * index + 1], _LIMITS[3 * index + 2]
            value = values[name]
            if not isinstance(value, int) or not low <= value <= high:
                raise ValueError("config %s=%r outside %d..%d" % (name, value, low, high))
        if not values["setpoint_min_mc"] <= values["setpoint_max_mc"] < values["trip_mc"]:
            raise ValueError("config needs setpoint_min <= setpoint_max < trip")
        if values["adc_short_below"] >= values["adc_open_above"]:
            raise ValueError("config needs adc_short_below < adc_open_above")
        self._values = values

    def __getitem__(self, name):
        return self._values[name]

    @classmethod
    def from_values(cls, values):
        """From a decoded ConfigData record value list."""
        return cls(dict(zip(FIELDS, values)))

    def changed(self, changes):
        """A new Config: this one with `changes` (name -> value) applied, validated again."""
        values = dict(self._values)
        values.update(changes)
        return Config(values)

    def values(self):
        """As a ConfigData value list, for the record."""
        return [self._values[name] for name in FIELDS]

    def gains(self, zone):
        """(kp, ki, kd) in Q16 for zone 0 (left) or 1 (right)."""
        prefix = "zone_left." if zone == 0 else "zone_right."
        return (self._values[prefix + "kp_q16"], self._values[prefix + "ki_q16"], self._values[prefix + "kd_q16"])
