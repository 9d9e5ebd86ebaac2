"""The calibration bath on its own pseudo-terminal: SCPI-like commands, a realistic approach
and stable flag, a reference probe within its stated uncertainty, and beds in the bath
seeing its temperature at their thermistors. As the station fixture: a reference shaker
that alone moves the bed sensor of a unit in the bath (through the unit's BCG zero and
gain), and meters that follow the wake light and haptic motor the unit drives."""

import math
import time

import pytest

from soma.link.serial_link import SerialLink
from soma.sim.bath import METER_NOISE_PERMILLE, PROBE_UNCERTAINTY_C, CalibrationBath
from soma.sim.sanctuary import Sanctuary, wait_for
from soma.sim.sleeper import Sleeper
from soma.sim.world import HAPTIC, WAKE_LIGHT, BedWorld, Unit


def ask(link, command, timeout=2.0):
    link.write(command.encode() + b"\n")
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n") and time.monotonic() < deadline:
        data += link.read(0.05)
    return data.decode().strip()


@pytest.fixture
def sanctuary(tmp_path):
    with Sanctuary(beds=1, root=tmp_path, flashed=True, time_scale=200) as sanctuary:
        yield sanctuary


def test_scpi_commands_and_stability(sanctuary):
    with SerialLink(sanctuary.bath.port, 9600) as bath:
        assert ask(bath, "*IDN?").startswith("SomaSim,CalBath-1,CB0001")
        bath.write(b"SOUR:TEMP 30.5\n")
        assert ask(bath, "SOUR:TEMP?") == "30.500"
        assert ask(bath, "STAB?") == "0"  # it has to get there first
        assert wait_for(lambda: ask(bath, "STAB?") == "1", 10)
        readings = [float(ask(bath, "MEAS:TEMP?")) for _ in range(20)]
        assert all(abs(reading - 30.5) <= PROBE_UNCERTAINTY_C + 0.01 for reading in readings)
        assert ask(bath, "SOUR:TEMP 99").startswith("ERR:")
        assert ask(bath, "FLY").startswith("ERR:unknown command")


def test_a_bed_in_the_bath_reads_the_bath_temperature(sanctuary):
    bed = sanctuary.beds[0]
    sanctuary.place_in_bath(1)
    with SerialLink(sanctuary.bath.port) as bath, SerialLink(bed.port) as link:
        bath.write(b"SOUR:TEMP 35\n")
        assert wait_for(lambda: ask(bath, "STAB?") == "1", 10)
        time.sleep(0.3)  # a few 10 Hz readings
        readings = link.management().request("read_sensors", timeout=5)
    temps_c = [value / 1000 for value in readings[6:9]]
    # Uncalibrated: the unit's R25 (+-5 %) and B (+-2 %) spread shows as up to ~1.5 degC.
    assert all(abs(temp - 35.0) < 1.6 for temp in temps_c), temps_c


def test_fixture_commands_answer_and_reject_bad_arguments(sanctuary):
    with SerialLink(sanctuary.bath.port, 9600) as bath:
        assert ask(bath, "VIBR:FREQ?") == "1.000"
        assert ask(bath, "VIBR:AMPL?") == "0"  # off at power-up
        bath.write(b"VIBR:AMPL 4000\n")
        assert ask(bath, "VIBR:AMPL?") == "4000"
        for bad in ("VIBR:AMPL 8001", "VIBR:AMPL -1", "VIBR:AMPL loud", "VIBR:AMPL", "VIBR:AMPL nan", "VIBR:FREQ 2"):
            assert ask(bath, bad).startswith("ERR:"), bad
        assert ask(bath, "VIBR:AMPL?") == "4000"  # refused settings change nothing
        bath.write(b"vibr:ampl 0\n")
        assert ask(bath, "VIBR:AMPL?") == "0"
        # Nothing in the station: the meters see nothing.
        assert ask(bath, "MEAS:LIGHT?") == "0"
        assert ask(bath, "MEAS:HAPT?") == "0"


def meter(bath, command):
    return int(ask(bath, command))


def test_the_meters_follow_what_the_unit_drives(sanctuary):
    sanctuary.place_in_bath(1)
    with SerialLink(sanctuary.bath.port, 9600) as bath, SerialLink(sanctuary.beds[0].port) as link:
        client = link.management()
        client.request("bench_override", [WAKE_LIGHT, 500, 5000], timeout=5)
        assert wait_for(lambda: abs(meter(bath, "MEAS:LIGHT?") - 500) <= METER_NOISE_PERMILLE, 3)
        assert meter(bath, "MEAS:HAPT?") == 0
        client.request("bench_override", [HAPTIC, 800, 5000], timeout=5)
        assert wait_for(lambda: abs(meter(bath, "MEAS:HAPT?") - 800) <= METER_NOISE_PERMILLE, 3)
        readings = [meter(bath, "MEAS:LIGHT?") for _ in range(20)]
        assert all(abs(reading - 500) <= METER_NOISE_PERMILLE for reading in readings), readings
        client.request("bench_override", [WAKE_LIGHT, 0, 0], timeout=5)  # released: off
        assert wait_for(lambda: meter(bath, "MEAS:LIGHT?") == 0, 3)
        assert abs(meter(bath, "MEAS:HAPT?") - 800) <= METER_NOISE_PERMILLE
        sanctuary.place_in_bath(1, inside=False)  # out of the station: the meters see nothing
        assert wait_for(lambda: meter(bath, "MEAS:HAPT?") == 0, 3)


def test_in_the_bath_the_bed_sensor_feels_only_the_shaker_through_the_units_tolerances():
    unit = Unit("5c0a00000001", 0, 0, bcg_offset=-250.0, bcg_gain=1.1)
    bed = BedWorld(unit, time_scale=1000, sleeper=Sleeper("shaker", time_scale=1000))
    bath = CalibrationBath().start()
    try:
        bed.bath = bath
        bath.answer("VIBR:AMPL 3000")
        start = time.monotonic() + 1.0  # the sleeper is in bed by then, heart beating
        errors = []
        for n in range(300):
            now = start + n * 0.01
            bed.serve(now, 0.01)
            expected = 32768 - 250.0 + 1.1 * 3000 * math.sin(2 * math.pi * now)
            errors.append(bed.model.codes[5] - expected)
    finally:
        bath.stop()
        bed.close()
    rms = math.sqrt(sum(error * error for error in errors) / len(errors))
    assert 1.5 < rms < 6.0, rms  # the fixture's ~3 codes rms, times the unit's gain
    assert max(abs(error) for error in errors) < 25


def test_units_keep_their_old_tolerances_and_draw_bcg_ones_in_range():
    unit = Unit.from_seed(4, 0)
    assert (unit.serial, unit.drift_ppb, unit.adc_offset) == ("5c0a410bfde4", -36825, pytest.approx(-15.2667676))
    units = [Unit.from_seed(seed, index) for seed in range(1, 6) for index in range(4)]
    assert all(-600 <= u.bcg_offset <= 600 and 0.85 <= u.bcg_gain <= 1.15 for u in units)
    assert len({u.bcg_gain for u in units}) == len(units)
