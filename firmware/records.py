"""Persistent records: calibration, configuration, comfort profile and sanctuary key.

A record file is one wire_codec RECORD (magic, kind, version, generation, payload,
CRC-32) written with FlashStorage.write_atomic. Calibration and key keep two
generations, in <name>.a and <name>.b: a save replaces the slot that does not hold the
newest valid record, so damage to the newest file leaves the previous one loadable.
Config and comfort keep one file, <name>. Loading never raises on file content: the
caller gets MISSING or CORRUPT and falls back to safe defaults.
"""

from errno import ENOENT

from micropython import const

from storage import TMP_SUFFIX
from wire_codec import (
    RECORD,
    RECORD_KIND_CALIBRATION,
    RECORD_KIND_COMFORT,
    RECORD_KIND_CONFIG,
    RECORD_KIND_KEY,
    RECORD_PAYLOADS,
    ProtocolError,
    pack,
    unpack,
)

MISSING = const(0)
VALID = const(1)
CORRUPT = const(2)

RECORD_VERSION = const(1)
# Largest payload: calibration, 54 fixed bytes and a station name of up to 255 bytes.
PAYLOAD_MAX = const(310)
# Magic, kind, version, generation, payload length, payload, CRC.
RECORD_MAX = const(PAYLOAD_MAX + 16)

_U32 = const(0xFFFFFFFF)
_HALF = const(0x80000000)

_FILES = {
    RECORD_KIND_CALIBRATION: ("cal.a", "cal.b"),
    RECORD_KIND_CONFIG: ("cfg",),
    RECORD_KIND_COMFORT: ("comfort",),
    RECORD_KIND_KEY: ("key.a", "key.b"),
}


def _newer(a, b):
    """True if generation a comes after b in wrapping u32 order."""
    return 0 < ((a - b) & _U32) < _HALF


class RecordStore:
    """Loads and saves records in a storage.FlashStorage."""

    def __init__(self, storage):
        self._storage = storage
        self._buf = bytearray(RECORD_MAX + 1)  # the spare byte exposes an oversized file
        self._payload = bytearray(PAYLOAD_MAX)

    def load(self, kind):
        """Return (state, generation, values) for the newest valid generation of `kind`.

        state is VALID, MISSING (no file) or CORRUPT (files, none valid); generation is
        0 and values None unless VALID.
        """
        state, generation, values, _ = self._newest(kind)
        return state, generation, values

    def save(self, kind, values):
        """Write `values` as the next generation of `kind`; return that generation.

        Raises ProtocolError if the values do not fit the payload, OSError if flash fails.
        """
        state, generation, _, slot = self._newest(kind)
        generation = (generation + 1) & _U32 if state == VALID else 1
        n = pack(RECORD_PAYLOADS[kind], self._payload, 0, values)
        n = pack(RECORD, self._buf, 0, [kind, RECORD_VERSION, generation, memoryview(self._payload)[:n]])
        files = _FILES[kind]
        self._storage.write_atomic(files[(slot + 1) % len(files)], memoryview(self._buf)[:n])
        return generation

    def erase(self, kind):
        """Remove every file of `kind`, temporaries too (they may hold a key)."""
        for name in _FILES[kind]:
            self._storage.remove(name)
            self._storage.remove(name + TMP_SUFFIX)

    def _newest(self, kind):
        # -> (state, generation, values, slot index or -1)
        files = _FILES[kind]
        best = (MISSING, 0, None, -1)
        for slot in range(len(files)):
            state, generation, values = self._read(kind, files[slot])
            if state == VALID:
                if best[0] != VALID or _newer(generation, best[1]):
                    best = (VALID, generation, values, slot)
            elif state == CORRUPT and best[0] == MISSING:
                best = (CORRUPT, 0, None, -1)
        return best

    def _read(self, kind, name):
        # Read into the fixed buffer rather than storage.read: a huge file cannot exhaust the heap.
        buf = self._buf
        try:
            with self._storage.open(name, "rb") as f:
                view = memoryview(buf)
                n = 0
                while n < len(buf):
                    got = f.readinto(view[n:])
                    if not got:
                        break
                    n += got
        except OSError as e:
            return (MISSING if e.errno == ENOENT else CORRUPT), 0, None
        if n > RECORD_MAX:
            return CORRUPT, 0, None
        try:
            found_kind, version, generation, payload = unpack(RECORD, buf, 0, n)
            if found_kind != kind or version != RECORD_VERSION:
                return CORRUPT, 0, None
            return VALID, generation, unpack(RECORD_PAYLOADS[kind], payload)
        except ProtocolError:
            return CORRUPT, 0, None
