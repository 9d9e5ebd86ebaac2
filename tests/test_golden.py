"""Fixed byte samples for every message, both directions, on every codec.

Codecs: construct on the host, the generated firmware codec under CPython, and the
same generated codec under real MicroPython. A hand edit to one field's width in
any of them, or a schema change without regenerating, makes these fail.
"""

import json
from pathlib import Path

import pytest

import wire_codec
from soma.crosscheck.firmware_codec import LAYOUT_IDS, from_json
from soma_protocol import auth, codec, framing
from strategies import same_values

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core

VECTORS = json.loads(Path(__file__).with_name("golden").joinpath("vectors.json").read_text())
NAMES = sorted(VECTORS["messages"])


def _vector(name):
    entry = VECTORS["messages"][name]
    return [from_json(v) for v in entry["values"]], bytes.fromhex(entry["hex"])


def test_every_message_has_a_vector():
    assert set(NAMES) == set(codec.MESSAGES)


@pytest.mark.parametrize("name", NAMES)
def test_construct_both_ways(name):
    values, data = _vector(name)
    assert codec.encode(name, values) == data
    assert same_values(codec.decode(name, data), values)


@pytest.mark.parametrize("name", NAMES)
def test_generated_codec_under_cpython_both_ways(name):
    values, data = _vector(name)
    layout = LAYOUT_IDS[name]
    buf = bytearray(len(data) + 8)
    assert wire_codec.pack(layout, buf, 3, values) == 3 + len(data)
    assert bytes(buf[3 : 3 + len(data)]) == data
    assert same_values(wire_codec.unpack(layout, data), values)


@pytest.mark.parametrize("name", NAMES)
def test_generated_codec_under_micropython_both_ways(firmware, name):
    values, data = _vector(name)
    assert firmware.pack(name, values) == data
    assert same_values(firmware.unpack(name, data), values)


def test_beacon_fast_path_both_ways():
    values, data = _vector("beacon")
    assert auth.BEACON.pack(values) == data
    assert auth.BEACON.unpack(data) == values


def test_signed_beacon_host_and_firmware(firmware):
    entry = VECTORS["signed_beacon"]
    key = bytes.fromhex(entry["key"])
    values = [from_json(v) for v in entry["values"]] + [bytes(8)]
    data = bytes.fromhex(entry["hex"])
    assert auth.sign_beacon(key, values) == data
    assert (
        firmware.call("sign", key=entry["key"], values=[v for v in entry["values"]] + [["b", "00" * 8]]) == data.hex()
    )
    assert firmware.call("verify", key=entry["key"], sanctuary_id=values[0], beacons=[data.hex()]) == [0]
    verifier = auth.BeaconVerifier(key, values[0])
    assert verifier.check(data)[0] == "accepted"


def test_line_frame_host_and_firmware(firmware):
    body = bytes.fromhex(VECTORS["line_frame"]["body"])
    line = bytes.fromhex(VECTORS["line_frame"]["line"])
    assert framing.encode(body) == line
    assert firmware.call("encode_frame", hex=body.hex()) == line.hex()
    assert framing.FrameDecoder().feed(line) == [body]
    assert firmware.call("frames", chunks=[line.hex()]) == [body.hex()]
