"""Differential fuzz bursts: mutated beacons and management frames through the host codec
(construct) and the generated firmware codec under MicroPython, which must agree exactly.

Used by `soma demo` and the protocol benchmark; the test suite fuzzes with hypothesis.
"""

import math
import struct
import time
from binascii import crc32
from collections.abc import Callable, Iterable, Sequence
from random import Random
from typing import Literal, TypedDict, cast

from soma.crosscheck.firmware_codec import FirmwareCodec, FirmwareProtocolError, WireValue
from soma_protocol import codec, schema
from soma_protocol.enums import FrameKind, MessageId
from soma_protocol.ir import Leaf


class FuzzDisagreement(AssertionError):
    """The host and firmware codecs treated the same bytes differently."""


class BurstFigures(TypedDict):
    cases: int
    accepted: int
    rejected: int
    seconds: float


Decoder = Callable[[str, bytes], list[WireValue]]


def burst(firmware: FirmwareCodec, rng: Random, count: int, beacons: Iterable[bytes]) -> BurstFigures:
    """Run `count` cases seeded from `beacons` and every frame type; return the figures.

    Raises FuzzDisagreement (with the case noted) on the first disagreement.
    """
    cases = fuzz_cases(rng, count, beacons)
    accepted = 0
    start = time.perf_counter()
    for number, (name, data) in enumerate(cases):
        try:
            accepted += compare(firmware, name, data)
        except Exception as exc:
            exc.add_note(f"fuzz case {number}: {name} {data.hex()}")
            raise
    seconds = time.perf_counter() - start
    return BurstFigures(cases=count, accepted=accepted, rejected=count - accepted, seconds=seconds)


def fuzz_cases(rng: Random, count: int, beacons: Iterable[bytes]) -> list[tuple[str, bytes]]:
    """`count` (message name, mutated bytes) pairs from valid beacons and management frames."""
    frame_types = [*schema.MANAGEMENT_PAYLOADS, ("error", "ping")]  # an error frame may answer any request
    seeds: list[tuple[str, bytes]] = [("beacon", data) for data in beacons] + [
        ("frame", _frame(rng, *names)) for names in frame_types
    ]
    cases: list[tuple[str, bytes]] = []
    for _ in range(count):
        name, seed = rng.choice(seeds)
        data = bytearray(seed)
        for _ in range(rng.randint(1, 3)):
            _mutate(rng, data, rng.choice(seeds)[1])
        if len(data) > 4 and rng.random() < 0.5:  # a fresh CRC lets the mutation reach the field checks
            data[-4:] = crc32(data[:-4]).to_bytes(4, "little")
        cases.append((name, bytes(data)))
    return cases


def _frame(rng: Random, kind_name: str, msg_name: str) -> bytes:
    """A valid management frame of this kind and message carrying a random valid payload."""
    kind, msg = int(FrameKind[kind_name]), int(MessageId[msg_name])
    payload = codec.payload_name(kind, msg)
    values = [_random_value(rng, leaf) for leaf in codec.MESSAGES[payload].fields]
    return codec.encode("frame", [kind, rng.randrange(1 << 16), msg, codec.encode(payload, values)])


def _random_value(rng: Random, leaf: Leaf) -> WireValue:
    if leaf.kind == "blob":
        return rng.randbytes(rng.randrange(12))
    if leaf.kind == "bytes":
        return rng.randbytes(leaf.size)
    if leaf.fmt in "fd" and rng.random() < 0.25:
        return rng.choice((math.nan, -math.inf, -0.0))
    return struct.unpack("<" + leaf.fmt, rng.randbytes(leaf.size))[0]


def _mutate(rng: Random, data: bytearray, donor: bytes) -> None:
    """Change data in place: a bit flip (half the time, as it keeps the length for the field
    checks), a truncation, an extension or a splice from donor."""
    how: Literal["flip", "truncate", "extend", "splice"] = rng.choices(
        ("flip", "truncate", "extend", "splice"), weights=(3, 1, 1, 1)
    )[0]
    if how == "flip" and data:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif how == "truncate" and data:
        del data[rng.randrange(len(data)) :]
    elif how == "extend":
        data += rng.randbytes(rng.randint(1, 8))
    else:
        start = rng.randrange(len(donor))
        piece = donor[start : start + rng.randint(1, 16)]
        at = rng.randrange(len(data) + 1)
        data[at : at + rng.randrange(len(piece) + 1)] = piece


def compare(firmware: FirmwareCodec, name: str, data: bytes) -> bool:
    """Decode data as `name` on both sides; True if both accept, False if both reject;
    FuzzDisagreement otherwise."""
    host = _outcome(codec.decode, codec.ProtocolError, name, data)
    firm = _outcome(firmware.unpack, FirmwareProtocolError, name, data)
    accepted = not isinstance(host, Exception)
    if accepted == isinstance(firm, Exception) or (
        not isinstance(host, Exception) and not isinstance(firm, Exception) and _exact(host) != _exact(firm)
    ):
        raise FuzzDisagreement(f"{name}: host gave {host!r}, firmware gave {firm!r}")
    if name == "frame" and accepted:
        try:
            payload = codec.payload_name(cast(int, host[0]), cast(int, host[2]))  # a frame's kind and message
        except codec.ProtocolError:
            return True  # no payload is defined for this kind and message: nothing more to compare
        compare(firmware, payload, cast(bytes, host[3]))  # a frame's last field is its payload
    return accepted


def _outcome(unpack: Decoder, rejection: type[Exception], name: str, data: bytes) -> list[WireValue] | Exception:
    """The decoded values, or the rejection exception."""
    try:
        return unpack(name, data)
    except rejection as exc:
        return exc


def _exact(values: Sequence[WireValue]) -> list[int | bytes]:
    """Values where == is exact: floats as their bytes, so NaN equals NaN and -0.0 differs from 0.0."""
    return [struct.pack("<d", value) if isinstance(value, float) else value for value in values]
