"""The deployed firmware (.mpy) on the sim board backend, under `-X heapsize=96K`: it boots,
answers with the schema's protocol hash, streams telemetry, drives outputs through the
simulator link, feeds the watchdog, and turns a zone off when its thermistor opens."""

import math
import time

import pytest

from soma.sim.firmware_process import FirmwareProcess
from soma_protocol import ir
from soma_protocol.enums import FaultCode


def ntc_code(temp_c):
    """The SB-1 divider's ADC code for a nominal NTC (10 kOhm, B 3950) at temp_c."""
    resistance = 10_000 * math.exp(3950 * (1 / (temp_c + 273.15) - 1 / 298.15))
    return round(65_535 * resistance / (resistance + 10_000))


PAD_30C = [ntc_code(30.0), ntc_code(30.0), ntc_code(24.0), 0, 0, 32_768]


def feed(bed, seconds, codes):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        bed.client.poll(0.01)
        bed.send_sensors(codes)


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    with FirmwareProcess(tmp_path_factory.mktemp("flash"), heap="96K") as process:
        feed(process, 1.0, PAD_30C)
        yield process


def test_info_reports_the_schema_protocol_hash(bed):
    version, _, protocol_hash, serial, *_ = bed.client.request("info")
    assert protocol_hash == ir.protocol_hash()
    assert version == b"0.1.0" and serial == b"5c0a00000001"


def test_outputs_telemetry_and_watchdog_over_the_sim_link(bed):
    bed.client.request("set_targets", [33_000, 27_000])  # heat left, cool right
    bed.client.request("telemetry_control", [100])
    feed(bed, 2.0, PAD_30C)
    assert bed.outputs[0] > 0 and bed.outputs[1] < 0
    assert bed.watchdog["timeout_ms"] == 2000 and bed.watchdog["feeds"] > 100
    assert len(bed.client.telemetry) >= 10
    assert bed.client.telemetry[-1][6] == bed.outputs[0]  # drive_left_permille as applied


def test_the_heap_stays_within_budget(bed):
    feed(bed, 8.0, PAD_30C)  # enough ticks that one late tick on a busy host is a ratio, not a verdict
    stats = bed.client.request("loop_stats")
    heap_used = stats[9]
    assert 0 < heap_used <= 80 * 1024
    assert stats[1] / stats[0] <= 0.001  # overruns within the SPEC bar (0.1 %)


def test_open_thermistor_turns_its_zone_off_and_is_reported(bed):
    bed.client.request("set_targets", [33_000, 33_000])
    feed(bed, 0.5, PAD_30C)
    assert bed.outputs[0] > 0
    open_left = [65_535] + PAD_30C[1:]
    feed(bed, 0.6, open_left)
    assert bed.outputs[0] == 0 and bed.outputs[1] > 0
    codes = [values[0] for name, values in bed.client.events if name == "fault_event" and values[1] == 1]
    assert int(FaultCode.sensor_left) in codes


def test_hand_back_to_the_repl_turns_everything_off_and_holds_the_watchdog(tmp_path):
    with FirmwareProcess(tmp_path / "flash", heap="96K") as process:
        feed(process, 1.0, PAD_30C)
        process.client.request("set_targets", [33_000, 33_000])
        feed(process, 0.5, PAD_30C)
        assert process.outputs[0] > 0
        assert process.client.request("repl_handback") == []
        deadline = time.monotonic() + 3
        while process.running() and time.monotonic() < deadline:
            process.serve_world(0.05)
        process.serve_world(0.1)
        assert not process.running()  # run without `-i` here: the application has ended
        assert process.outputs == [0, 0, 0, 0, 0]
        assert process.watchdog["held"] == 1
