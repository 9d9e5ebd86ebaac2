"""Unit configuration: PID gains and safety limits, validated once, at construction.

The field names and order are the schema's ConfigData record; defaults are sized for a
mattress pad (thermal mass of a few kJ/K, time constant of many minutes).
"""

from wire_codec import CONFIG_DATA

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

# name: (default, lowest allowed, highest allowed)
_RULES = {
    "zone_left.kp_q16": (40_000, 0, 100_000),  # SIMC tuning of a 3 kJ/K, 4 W/K pad
    "zone_left.ki_q16": (26, 0, 100_000),
    "zone_left.kd_q16": (0, 0, 100_000),
    "zone_right.kp_q16": (40_000, 0, 100_000),  # SIMC tuning of a 3 kJ/K, 4 W/K pad
    "zone_right.ki_q16": (26, 0, 100_000),
    "zone_right.kd_q16": (0, 0, 100_000),
    "trip_mc": (42_000, 30_000, 42_000),  # never above the product's hard limit
    "setpoint_min_mc": (13_000, 13_000, 40_000),
    "setpoint_max_mc": (40_000, 13_000, 40_000),
    "adc_open_above": (64_500, 32_768, 65_535),  # above: NTC open (colder than about -40 degC)
    "adc_short_below": (600, 0, 32_767),  # below: NTC shorted (hotter than about 160 degC)
    "runaway_rise_mc": (1_000, 50, 5_000),  # heating must gain this much...
    "runaway_rise_window_s": (300, 10, 3_600),  # ...within this long while below target
    "runaway_band_mc": (2_000, 200, 10_000),  # once settled, leaving this band...
    "runaway_band_window_s": (600, 10, 7_200),  # ...for this long is a runaway
    "frozen_window_s": (60, 5, 600),  # identical readings for this long while driving
    "deadman_ms": (3_000, 500, 3_000),
    "auto_off_min": (720, 1, 720),  # 12 h without a program or host refresh
    "power_budget_w": (240, 0, 10_000),
}
# (MicroPython dicts are unordered: FIELDS gives the record order.)
assert len(FIELDS) == len(_RULES) == CONFIG_DATA[2] and all(name in _RULES for name in FIELDS)


class Config:
    """Validated configuration, read as config["trip_mc"]; keys are FIELDS."""

    def __init__(self, overrides=None):
        values = {}
        for name, rule in _RULES.items():
            values[name] = rule[0]
        for name, value in (overrides or {}).items():
            if name not in _RULES:
                raise ValueError("unknown config key %r" % name)
            values[name] = value
        for name, value in values.items():
            low, high = _RULES[name][1], _RULES[name][2]
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
