"""Firmware benchmarks, under the real MicroPython unix port.

- firmware.sample_alloc_bytes_per_tick: bytes the 100 Hz sample path allocates, over
  5000 ticks with gc disabled, divided by the ticks (scripted board, tests/mp/scenarios.py).
- The loop figures come from the deployed firmware (.mpy) on the sim board, under
  `-X heapsize=96K`, for LOOP_SECONDS of real time with both zones controlling, telemetry
  streaming at 10 Hz and the world feeding sensor codes at 100 Hz; read with the
  loop_stats request: firmware.tick_overrun_ratio (GC included), firmware.tick_body_us_median
  and _p99 (upper bounds at the histogram's 20 us resolution), firmware.gc_pause_us_max,
  firmware.heap_used_bytes (after an idle-time collection), firmware.alloc_bytes_per_s.
- control.steady_state_error_c and control.overshoot_c: a 28 -> 32 degC set point step on
  the pad model (tests/mp/pad_plant.py) with the default gains, in virtual time.
"""

import tempfile
import time
from collections.abc import Iterator

# tests/ is on sys.path at run time (benchmarks/__init__.py), not on the type checker's.
from mpexec import run_micropython  # pyright: ignore[reportMissingImports]
from soma.sim.firmware_process import FirmwareProcess

from . import Result

SAMPLE_TICKS = 5000
LOOP_SECONDS = 20
# Pads at 30 degC, room at 24 degC (nominal NTC codes), no heater current, BCG at mid scale.
SENSOR_CODES = [29_202, 29_202, 33_498, 0, 0, 32_768]


def run() -> Iterator[Result]:
    with tempfile.TemporaryDirectory(prefix="soma-bench-") as scratch:
        report = run_micropython(
            f"import scenarios; scenarios.sample_path_allocation({SAMPLE_TICKS})", heap="256K", cwd=scratch
        )
        yield Result("firmware.sample_alloc_bytes_per_tick", report["allocated"] / report["ticks"], "bytes/tick")
        yield from _loop(scratch)
        report = run_micropython("import scenarios; scenarios.pid_step()", heap="256K", cwd=scratch)
        yield Result("control.steady_state_error_c", report["steady_error_max_c"], "degC")
        yield Result("control.overshoot_c", max(0.0, report["overshoot_c"]), "degC")


def _loop(scratch: str) -> Iterator[Result]:
    with FirmwareProcess(f"{scratch}/flash", heap="96K") as bed:
        client = bed.client
        assert client is not None  # started on entering
        _feed(bed, 1.0)  # boot and self-checks
        client.request("set_targets", [31_000, 29_000])
        client.request("telemetry_control", [100])
        _feed(bed, LOOP_SECONDS)
        stats = client.request_fields("loop_stats")
        if len(client.telemetry) < LOOP_SECONDS * 5:
            raise RuntimeError(f"telemetry did not stream: {len(client.telemetry)} frames")
    yield Result("firmware.tick_overrun_ratio", stats["overruns"] / stats["ticks"], "ratio")
    yield Result("firmware.tick_body_us_median", stats["body_p50_us"], "us")
    yield Result("firmware.tick_body_us_p99", stats["body_p99_us"], "us")
    yield Result("firmware.gc_pause_us_max", stats["gc_pause_max_us"], "us")
    yield Result("firmware.heap_used_bytes", stats["heap_used_bytes"], "bytes")
    yield Result("firmware.alloc_bytes_per_s", stats["alloc_bytes_per_s"], "bytes/s")


def _feed(bed: FirmwareProcess, seconds: float) -> None:
    """Serve the bed's world at 100 Hz for `seconds`."""
    assert bed.client is not None  # started on entering
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        bed.client.poll(0.01)
        bed.send_sensors(SENSOR_CODES)
