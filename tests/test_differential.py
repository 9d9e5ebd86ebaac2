"""Differential fuzzing: construct (host), the generated codec under MicroPython and under
CPython, and the host's beacon fast path must accept, reject and decode identically.

Cases are drawn in batches (one valid message, many structured mutations of it) and
sent to MicroPython in one round trip per batch. `fuzzcount` checks that every decoder
sees at least 10 000 cases per run in the `ci` profile.
"""

import binascii
import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import wire_codec
from fuzzcount import count, examples
from soma.crosscheck.firmware_codec import LAYOUT_IDS, FirmwareProtocolError
from soma_protocol import auth, codec
from soma_protocol.auth import VERDICTS
from strategies import MESSAGES, same_values, values_for

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core

BATCH = 20
PAYLOADS = sorted(set(MESSAGES) - {"beacon", "frame", "record"})


def judge_host(name, data):
    try:
        return codec.decode(name, data)
    except codec.ProtocolError:
        return None


def judge_generated(name, data):
    try:
        return wire_codec.unpack(LAYOUT_IDS[name], data)
    except wire_codec.ProtocolError:
        return None


def judge_fast(name, data):
    try:
        return auth.BEACON.unpack(data) if name == "beacon" else judge_host(name, data)
    except codec.ProtocolError:
        return None


def assert_alike(firmware, name, inputs, counted_as=None):
    """Every codec accepts or rejects each input alike, with equal values when accepted."""
    on_firmware = firmware.judge(name, inputs)
    for data, fw in zip(inputs, on_firmware, strict=True):
        host = judge_host(name, data)
        for label, other in (
            ("micropython", fw),
            ("cpython", judge_generated(name, data)),
            ("fast", judge_fast(name, data)),
        ):
            verdict = "rejects" if host is None else "accepts"
            assert (host is None) == (other is None), f"{name}: construct {verdict}, {label} does not: {data.hex()}"
            if host is not None:
                assert same_values(host, other), f"{name} via {label}: {host} != {other}"
    count(counted_as or name, len(inputs))


def _mutate(data, other, how, at, value, cut):
    data = bytearray(data)
    at %= max(len(data), 1)
    if how == "flip" and data:
        data[at] ^= 1 << (value % 8)
    elif how == "truncate":
        del data[at:]
    elif how == "extend":
        data += bytes([value]) * (1 + cut % 8)
    elif how == "splice":
        data = data[:at] + other[cut % (len(other) + 1) :]
    elif how == "crc" and len(data) >= 4:
        data[-1 - cut % 4] ^= value or 1
    elif how == "reseal" and len(data) > 4:
        # Corrupt the body and seal it again: only the decoders' own checks can tell.
        data[at % (len(data) - 4)] = value
        struct.pack_into("<I", data, len(data) - 4, binascii.crc32(data[:-4]))
    return bytes(data)


MUTATION = st.tuples(
    st.sampled_from(["intact", "flip", "truncate", "extend", "splice", "crc", "reseal"]),
    st.integers(0, 1 << 16),
    st.integers(0, 255),
    st.integers(0, 1 << 16),
)


@st.composite
def batches(draw, name):
    """BATCH inputs: mutations of one valid encoding (spliced with a second), or raw noise."""
    base = codec.encode(name, draw(values_for(name)))
    other = codec.encode(name, draw(values_for(name)))
    mutations = draw(st.lists(MUTATION, min_size=BATCH - 2, max_size=BATCH - 2))
    noise = draw(st.lists(st.binary(max_size=80), min_size=2, max_size=2))
    return [_mutate(base, other, *m) for m in mutations] + noise


@settings(max_examples=examples(600))
@given(batches("beacon"))
@example([b"", bytes.fromhex("b101") + bytes(60)])
def test_beacon_decoders_agree(firmware, inputs):
    assert_alike(firmware, "beacon", inputs)


@settings(max_examples=examples(600))
@given(batches("frame"))
@example([bytes.fromhex("0101050001ffff00000000")])  # payload length beyond the frame
def test_frame_decoders_agree(firmware, inputs):
    assert_alike(firmware, "frame", inputs)


@settings(max_examples=examples(600))
@given(batches("record"))
@example([b"SOMR", b""])
def test_record_decoders_agree(firmware, inputs):
    assert_alike(firmware, "record", inputs)


@st.composite
def payload_batches(draw):
    name = draw(st.sampled_from(PAYLOADS))
    base = codec.encode(name, draw(values_for(name)))
    mutations = draw(st.lists(MUTATION, min_size=BATCH, max_size=BATCH))
    return name, [_mutate(base, base, *m) for m in mutations]


@settings(max_examples=examples(600))
@given(payload_batches())
def test_payload_decoders_agree(firmware, case):
    name, inputs = case
    assert_alike(firmware, name, inputs, counted_as="payloads")


@settings(max_examples=examples(300))
@given(
    st.sampled_from(PAYLOADS + ["beacon", "frame", "record"]).flatmap(lambda n: st.tuples(st.just(n), values_for(n)))
)
def test_values_round_trip_through_every_codec(firmware, case):
    name, values = case
    data = codec.encode(name, values)
    assert firmware.pack(name, values) == data
    buf = bytearray(len(data))
    wire_codec.pack(LAYOUT_IDS[name], buf, 0, values)
    assert bytes(buf) == data
    assert same_values(firmware.unpack(name, data), values)
    assert same_values(codec.decode(name, data), values)


@settings(max_examples=examples(300))
@given(
    st.sampled_from(sorted(name for name, msg in MESSAGES.items() if msg.fields)).flatmap(
        lambda n: st.tuples(st.just(n), values_for(n), st.integers(0, len(MESSAGES[n].fields) - 1), st.integers())
    )
)
def test_out_of_range_values_are_refused_by_every_encoder(firmware, case):
    """MicroPython's struct would truncate silently: the generated code must refuse instead."""
    name, values, index, bad = case
    leaf = MESSAGES[name].fields[index]
    if leaf.kind in ("bytes", "blob"):
        values[index] = bytes(leaf.size + 1) if leaf.kind == "bytes" else 12345
    elif leaf.fmt in "fd":
        values[index] = "warm"
    else:
        width = 8 * leaf.size
        low = -(1 << (width - 1)) if leaf.fmt.islower() else 0
        if low <= bad < low + (1 << width):
            bad += 1 << width
        values[index] = bad
    for encode in (lambda: codec.encode(name, values), lambda: firmware.pack(name, values)):
        try:
            encode()
        except (codec.ProtocolError, FirmwareProtocolError):
            continue
        raise AssertionError(f"{name}.{leaf.path} = {values[index]!r} was packed")


KEY = bytes(range(32))


@st.composite
def beacon_traffic(draw):
    """Received beacons: fresh, replayed, forged, foreign and damaged, from a few senders."""
    sent, out = [], []
    for _ in range(draw(st.integers(1, 24))):
        how = draw(st.sampled_from(["fresh", "fresh", "replay", "forged", "foreign", "damaged"]))
        if how == "replay" and sent:
            out.append(draw(st.sampled_from(sent)))
            continue
        values = draw(values_for("beacon"))
        values[0] = 9 if how != "foreign" else 10
        values[1] = draw(st.integers(0, 4))
        values[2] = draw(st.integers(0, 2))
        values[3] = draw(st.integers(0, 6))
        data = auth.sign_beacon(KEY if how != "forged" else bytes(32), values)
        if how == "damaged":
            data = data[: draw(st.integers(0, len(data) - 1))]
        sent.append(data)
        out.append(data)
    return out


@settings(max_examples=examples(1000))
@given(beacon_traffic())
def test_beacon_verdicts_agree(firmware, beacons):
    host = auth.BeaconVerifier(KEY, 9, capacity=3)
    host_verdicts = [host.check(b)[0] for b in beacons]
    fw = firmware.call("verify", key=KEY.hex(), sanctuary_id=9, beacons=[b.hex() for b in beacons], capacity=3)
    assert [VERDICTS[v] for v in fw] == host_verdicts
    count("beacon_verifier", len(beacons))
