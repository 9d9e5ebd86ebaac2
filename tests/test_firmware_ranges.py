"""Fixed-point ranges: every product on the sample and control paths stays a small int on the
ESP32 port (within +-2^30); the unix port's 62-bit small ints would hide an overflow, so the
bounds are proven here from the firmware's own constants. Also: firmware constants agree
with the schema."""

import pytest

import board
import config
import control
import sensors
import thermistor
from soma_protocol import ir, schema
from soma_protocol.enums import OutputChannel

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core

SMALL_INT = 1 << 30


def test_pid_products_stay_small():
    worst_term = control.GAIN_MAX_Q16 * control._ERROR_CLAMP_MC
    assert worst_term < SMALL_INT
    assert (control.DRIVE_MAX << 16) + worst_term < SMALL_INT  # integral accumulator plus one step


def test_config_cannot_exceed_the_pid_gain_bound():
    fields = [leaf.path for leaf in ir.all_messages()["config_data"].fields]
    assert len(config._LIMITS) == 3 * len(fields)  # default, low, high per ConfigData value
    for index, name in enumerate(fields):
        if name.endswith("_q16"):
            assert config._LIMITS[3 * index + 2] <= control.GAIN_MAX_Q16


def test_sample_path_sums_and_scalings_stay_small():
    assert sensors.AVERAGE * board.ADC_FULL_SCALE < SMALL_INT
    assert board.ADC_FULL_SCALE * board.CURRENT_FULL_SCALE_MA < SMALL_INT


def test_thermistor_interpolation_stays_small_for_nominal_and_spread_units():
    for r25_scale, b_scale in ((1.0, 1.0), (0.95, 0.98), (1.05, 1.02)):
        import math

        beta = board.NTC_B_KELVIN * b_scale
        b = 1 / beta
        a = 1 / 298.15 - math.log(board.NTC_R25_OHM * r25_scale) * b
        table = thermistor.Thermistor(a, b, 0.0).table
        assert max(abs(v) for v in table) < SMALL_INT
        steps = [abs(table[i + 1] - table[i]) for i in range(len(table) - 1)]
        assert max(steps) * thermistor._FRACTION < SMALL_INT


def test_thermistor_table_is_exact_to_ten_millikelvin_where_beds_live():
    import math

    a, b, c = thermistor.nominal_coefficients()
    curve = thermistor.Thermistor(a, b, c)
    worst = 0.0
    for code in range(1000, 64000, 7):
        ln_r = math.log(thermistor.resistance_ohm(code))
        exact = 1 / (a + b * ln_r + c * ln_r**3) - 273.15
        if 10 <= exact <= 45:
            worst = max(worst, abs(curve.millicelsius(code) / 1000 - exact))
    assert worst < 0.010


def test_firmware_constants_agree_with_the_schema():
    outputs = {channel.name: int(channel) for channel in OutputChannel}
    assert outputs == {
        "drive_left": board.OUT_DRIVE_LEFT,
        "drive_right": board.OUT_DRIVE_RIGHT,
        "haptic": board.OUT_HAPTIC,
        "wake_light": board.OUT_WAKE_LIGHT,
        "status_led": board.OUT_STATUS_LED,
    }
    assert board.OUT_CHANNELS == schema.OUTPUT_CHANNELS
    assert board.ADC_CHANNELS == schema.SENSOR_CHANNELS
