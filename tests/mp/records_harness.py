"""MicroPython side of tests/test_records.py: damages record files in the current
directory and tallies what RecordStore.load makes of them."""

import os
import struct

from records import RECORD_MAX, RECORD_VERSION, RecordStore
from storage import FlashStorage
from wire_codec import RECORD, RECORD_PAYLOADS, pack

FILES = {1: ("cal.a", "cal.b"), 2: ("cfg",), 3: ("comfort",), 4: ("key.a", "key.b")}
TWO_GENERATIONS = (1, 4)  # calibration, key


def new_store():
    return RecordStore(FlashStorage(""))


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def stored(values):
    """`values` as they come back from flash: floats rounded to float32."""
    return [f32(v) if isinstance(v, float) else v for v in values]


def get(name):
    with open(name, "rb") as f:
        return f.read()


def put(name, data):
    with open(name, "wb") as f:
        f.write(data)


def listing():
    return sorted(os.listdir())


def record_bytes(kind, generation, values, version=RECORD_VERSION, payload_kind=0):
    """A sealed record built by hand; payload_kind packs the payload of another kind."""
    payload = bytearray(400)
    n = pack(RECORD_PAYLOADS[payload_kind or kind], payload, 0, values)
    out = bytearray(420)
    return bytes(out[: pack(RECORD, out, 0, [kind, version, generation, payload[:n]])])


def outcome(store, kind, expect):
    """'state:generation', with '!values' appended when VALID values differ from expect[generation]."""
    state, generation, values = store.load(kind)
    text = "%d:%d" % (state, generation)
    if state == 1 and values != expect.get(generation):
        text += "!values"
    return text


def tally(store, kind, victim, variants, expect):
    """Write each variant into `victim`, load, and count the outcomes; restore victim after."""
    original = get(victim)
    counts = {}
    for data in variants:
        put(victim, data)
        key = outcome(store, kind, expect)
        counts[key] = counts.get(key, 0) + 1
    put(victim, original)
    return counts


def truncations(data):
    for n in range(len(data)):
        yield data[:n]


def extensions(data):
    yield data + b"\x00"
    yield data + data
    yield data + bytes(RECORD_MAX)


def bit_flips(data):
    buf = bytearray(data)
    for i in range(len(buf) * 8):
        buf[i >> 3] ^= 1 << (i & 7)
        yield bytes(buf)
        buf[i >> 3] ^= 1 << (i & 7)


def sweep(kind, first, second, damage):
    """Damage every way `damage` yields: a lone record, then (two-generation kinds) the
    newest and the older of two, then both at once."""
    store = new_store()
    store.erase(kind)
    expect = {1: stored(first), 2: stored(second)}
    store.save(kind, first)
    name = FILES[kind][0]
    result = {"sizes": [len(get(name))], "alone": tally(store, kind, name, damage(get(name)), expect)}
    if kind in TWO_GENERATIONS:
        store.save(kind, second)
        older, newest = name, FILES[kind][1]
        result["sizes"].append(len(get(newest)))
        result["newest"] = tally(store, kind, newest, damage(get(newest)), expect)
        result["older"] = tally(store, kind, older, damage(get(older)), expect)
        counts = {}
        for bad_older, bad_newest in zip(damage(get(older)), damage(get(newest))):
            put(older, bad_older)
            put(newest, bad_newest)
            key = outcome(store, kind, expect)
            counts[key] = counts.get(key, 0) + 1
        result["both"] = counts
    store.erase(kind)
    return result
