"""Runs under MicroPython: answers codec requests from the host over stdin/stdout.

One JSON request per line, one JSON answer per line. Used by `soma decode
--firmware`, the benchmarks and the differential tests, so the generated codec and
the firmware's framing and authentication are exercised on the real interpreter.
Values cross as JSON: bytes as ["b", hex], floats as ["f", hex of a little-endian
double] (JSON has no NaN), integers as themselves.
"""

import gc
import json
import struct
import sys
import time
from binascii import hexlify, unhexlify

import beacon_auth
import frame_link
import wire_codec


def _to_json(value):
    if isinstance(value, (bytes, bytearray)):
        return ["b", hexlify(value).decode()]
    if isinstance(value, float):
        return ["f", hexlify(struct.pack("<d", value)).decode()]
    return value


def _from_json(value):
    if isinstance(value, list):
        if value[0] == "b":
            return unhexlify(value[1])
        return struct.unpack("<d", unhexlify(value[1]))[0]
    return value


def _layout(name):
    layout = getattr(wire_codec, name.upper(), None)
    if not isinstance(layout, tuple):
        raise KeyError(name)
    return layout


def op_unpack(req):
    return [_to_json(v) for v in wire_codec.unpack(_layout(req["layout"]), unhexlify(req["hex"]))]


def op_judge(req):
    """Decode each input; None where the codec rejects it with its ProtocolError."""
    layout = _layout(req["layout"])
    out = []
    for item in req["inputs"]:
        try:
            out.append([_to_json(v) for v in wire_codec.unpack(layout, unhexlify(item))])
        except wire_codec.ProtocolError:
            out.append(None)
    return out


def op_pack(req):
    buf = bytearray(req.get("room", 1024))
    values = [_from_json(v) for v in req["values"]]
    end = wire_codec.pack(_layout(req["layout"]), buf, 0, values)
    return hexlify(buf[:end]).decode()


def op_frames(req):
    reader = frame_link.FrameReader(req.get("body_max", wire_codec.FRAME_BODY_MAX))
    bodies = []
    for chunk in req["chunks"]:
        for byte in unhexlify(chunk):
            length = reader.push(byte)
            if length >= 0:
                bodies.append(hexlify(reader.body[:length]).decode())
    return bodies


def op_encode_frame(req):
    body = unhexlify(req["hex"])
    out = bytearray(frame_link.encoded_size_max(len(body)))
    return hexlify(out[: frame_link.encode_into(body, len(body), out)]).decode()


def op_hmac(req):
    return hexlify(beacon_auth.HmacSha256(unhexlify(req["key"])).digest(unhexlify(req["hex"]))).decode()


def op_verify(req):
    verifier = beacon_auth.BeaconVerifier(unhexlify(req["key"]), req["sanctuary_id"], req.get("capacity", 32))
    verdicts = []
    for item in req["beacons"]:
        data = unhexlify(item)
        verdicts.append(verifier.check(data, len(data))[0])
    return verdicts


def op_sign(req):
    buf = bytearray(wire_codec.BEACON_SIZE)
    values = [_from_json(v) for v in req["values"]]
    beacon_auth.pack_signed_beacon(beacon_auth.HmacSha256(unhexlify(req["key"])), buf, values)
    return hexlify(buf).decode()


def op_bench_verify(req):
    """Median microseconds to decode and authenticate one beacon (fresh seq each time)."""
    key = unhexlify(req["key"])
    verifier = beacon_auth.BeaconVerifier(key, req["sanctuary_id"], 32)
    beacons = [unhexlify(item) for item in req["beacons"]]
    times = []
    for data in beacons:
        start = time.ticks_us()
        verdict = verifier.check(data, len(data))[0]
        times.append(time.ticks_diff(time.ticks_us(), start))
        if verdict != beacon_auth.ACCEPTED:
            raise ValueError("benchmark beacon rejected: verdict %d" % verdict)
    times.sort()
    return times[len(times) // 2]


def op_info(req):
    gc.collect()
    return {"protocol_hash": wire_codec.PROTOCOL_HASH, "mem_free": gc.mem_free(), "mem_alloc": gc.mem_alloc()}


OPS = {
    "unpack": op_unpack,
    "judge": op_judge,
    "pack": op_pack,
    "frames": op_frames,
    "encode_frame": op_encode_frame,
    "hmac": op_hmac,
    "verify": op_verify,
    "sign": op_sign,
    "bench_verify": op_bench_verify,
    "info": op_info,
}


def serve():
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        try:
            req = json.loads(line)
            answer = {"ok": OPS[req["op"]](req)}
        except wire_codec.ProtocolError as exc:
            answer = {"protocol_error": str(exc)}
        except Exception as exc:  # reported, not hidden: the host treats it as a defect
            answer = {"crash": "%s: %s" % (type(exc).__name__, exc)}
        sys.stdout.write(json.dumps(answer))
        sys.stdout.write("\n")
        gc.collect()


serve()
