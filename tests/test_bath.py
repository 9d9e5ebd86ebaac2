"""The calibration bath on its own pseudo-terminal: SCPI-like commands, a realistic approach
and stable flag, a reference probe within its stated uncertainty, and beds in the bath
seeing its temperature at their thermistors."""

import time

import pytest

from soma.serial_link import SerialLink
from soma.sim.bath import PROBE_UNCERTAINTY_C
from soma.sim.sanctuary import Sanctuary, wait_for


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
