"""Protocol benchmarks: how fast beacons are encoded and validated, on the host and under MicroPython.

- protocol.host_encode_per_s: `sign_beacon` calls per second on one core (pack, HMAC tag, CRC).
- protocol.host_decode_per_s: beacons per second that `BeaconVerifier.check` accepts on one
  core (length, CRC, sanctuary, tag and replay checks); every timed beacon must be accepted.
- protocol.fw_decode_verify_us: median microseconds for the firmware's `BeaconVerifier.check`
  to decode and accept one beacon under real MicroPython (the unix port on this machine, not an ESP32).
- protocol.fuzz_cases_per_s: mutated beacons and management frames per second put through
  both the host codec (construct) and the firmware codec (MicroPython), which must accept and
  reject the same inputs and agree on every value; an accepted frame's payload is compared too.
"""

import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from soma.crosscheck import fuzzing
from soma.crosscheck.firmware_codec import FirmwareCodec
from soma_protocol import auth, codec, schema

from . import Result

T = TypeVar("T")

KEY = bytes(range(0x40, 0x40 + schema.KEY_LEN))
SANCTUARY_ID = 7
SENDERS = 16  # bed ids the benchmark beacons are spread over, each with its own rising seq
HOST_BEACONS = 200_000
REPEATS = 3  # host figures are the best of this many runs
FW_BEACONS = 500
FUZZ_CASES = 3000
FUZZ_SEED = 20240


def run() -> Iterator[Result]:
    values = [_beacon_values(index) for index in range(HOST_BEACONS)]
    seconds, beacons = _best_of(lambda: [auth.sign_beacon(KEY, item) for item in values])
    yield Result("protocol.host_encode_per_s", round(HOST_BEACONS / seconds), "beacons/s")
    seconds, _ = _best_of(lambda: _verify_all(beacons))
    yield Result("protocol.host_decode_per_s", round(HOST_BEACONS / seconds), "beacons/s")
    with FirmwareCodec() as firmware:
        median_us = firmware.call(
            "bench_verify", key=KEY.hex(), sanctuary_id=SANCTUARY_ID, beacons=[b.hex() for b in beacons[:FW_BEACONS]]
        )
        yield Result("protocol.fw_decode_verify_us", median_us, "us")
        figures = fuzzing.burst(firmware, random.Random(FUZZ_SEED), FUZZ_CASES, beacons[:SENDERS])
        yield Result("protocol.fuzz_cases_per_s", round(figures["cases"] / figures["seconds"]), "cases/s")


def _beacon_values(index: int) -> list[int | bytes]:
    """Beacon value list number `index`: bed index % SENDERS, its seq rising with index."""
    seq = index // SENDERS + 1
    fields = {
        "sanctuary_id": SANCTUARY_ID,
        "bed_id": index % SENDERS,
        "boot_epoch": 3,
        "seq": seq,
        "flags": 0b101,  # synced, program_running
        "root_id": 0,
        "root_seq": seq,
        "global_time_us": 1_700_000_000_000_000 + 250_000 * index,
        "program_id": 12,
        "program_version": 2,
        "program_start_us": 1_700_000_000_000_000,
        "occupancy": 2,
        "wake_readiness": 3,
        "power_demand_w": 180,
        "power_grant_w": 150,
        "drift_ppb": -1250,
        "hops": 1,
        "tag": bytes(schema.TAG_LEN),  # replaced by sign_beacon
    }
    return [fields[leaf.path] for leaf in codec.MESSAGES["beacon"].fields]


def _best_of(work: Callable[[], T]) -> tuple[float, T]:
    """(shortest seconds, result) over REPEATS calls of work()."""
    start = time.perf_counter()
    result = work()
    best = time.perf_counter() - start
    for _ in range(REPEATS - 1):
        start = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - start)
    return best, result


def _verify_all(beacons: Sequence[bytes]) -> None:
    verifier = auth.BeaconVerifier(KEY, SANCTUARY_ID)
    check = verifier.check
    for data in beacons:
        check(data)
    if verifier.counts["accepted"] != len(beacons):
        raise RuntimeError(f"benchmark beacons not all accepted: {verifier.counts}")
