"""Beacon authentication and replay protection (firmware side).

tag = HMAC-SHA256(sanctuary key, every beacon byte before the tag), truncated to
TAG_LEN bytes, as MAVLink 2 signing truncates its SHA-256 signature. A sender's
(boot_epoch, seq) must strictly increase: a replayed or reordered-old beacon is
refused. MicroPython has no `hmac` module, so RFC 2104 is written on `hashlib`.
"""

import hashlib
from array import array

from micropython import const

from wire_codec import (
    BEACON,
    BEACON_AT_TAG,
    BEACON_IX_BED_ID,
    BEACON_IX_BOOT_EPOCH,
    BEACON_IX_SANCTUARY_ID,
    BEACON_IX_SEQ,
    TAG_LEN,
    ProtocolError,
    pack,
    unpack,
)

_BLOCK = const(64)
_NO_SENDER = const(-1)
_ZERO_TAG = bytes(TAG_LEN)

# Verdicts, in the order the checks run (the host's soma_protocol.auth uses the same).
ACCEPTED = const(0)
MALFORMED = const(1)
FOREIGN = const(2)
UNAUTHENTICATED = const(3)
REPLAYED = const(4)


class HmacSha256:
    """HMAC-SHA256 (RFC 2104) with the padded key blocks computed once."""

    def __init__(self, key):
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        padded = bytearray(_BLOCK)
        padded[: len(key)] = key
        self._inner = bytes(b ^ 0x36 for b in padded)
        self._outer = bytes(b ^ 0x5C for b in padded)

    def digest(self, data):
        h = hashlib.sha256(self._inner)
        h.update(data)
        inner = h.digest()
        h = hashlib.sha256(self._outer)
        h.update(inner)
        return h.digest()


def pack_signed_beacon(mac, buf, values):
    """Pack beacon `values` (a list; its last item, the tag, is overwritten) into buf, signed."""
    values[-1] = _ZERO_TAG
    pack(BEACON, buf, 0, values)
    values[-1] = mac.digest(memoryview(buf)[:BEACON_AT_TAG])[:TAG_LEN]
    return pack(BEACON, buf, 0, values)


class ReplayGuard:
    """Last (boot_epoch, seq) per sender in fixed arrays; the least recently heard sender
    makes room for a new one when the table is full."""

    def __init__(self, capacity):
        self._ids = array("i", [_NO_SENDER] * capacity)
        self._epochs = array("H", bytes(2 * capacity))
        self._seqs = array("I", bytes(4 * capacity))
        self._heard = array("I", bytes(4 * capacity))
        self._clock = 0

    def admit(self, sender, epoch, seq):
        """True and remembered if (epoch, seq) is newer than anything from sender."""
        ids = self._ids
        slot = -1
        for i in range(len(ids)):
            if ids[i] == sender:
                slot = i
                break
        if slot >= 0:
            last_epoch = self._epochs[slot]
            if epoch < last_epoch or (epoch == last_epoch and seq <= self._seqs[slot]):
                return False
        else:
            slot = 0
            for i in range(len(ids)):
                if ids[i] == _NO_SENDER:
                    slot = i
                    break
                if self._heard[i] < self._heard[slot]:
                    slot = i
            ids[slot] = sender
        self._clock = (self._clock + 1) & 0x3FFFFFFF  # stays a small int on the ESP32
        self._epochs[slot] = epoch
        self._seqs[slot] = seq
        self._heard[slot] = self._clock
        return True


class BeaconVerifier:
    """Checks received beacons in order: shape and CRC, sanctuary, tag, replay."""

    def __init__(self, key, sanctuary_id, capacity=32):
        self._mac = HmacSha256(key)
        self._sanctuary_id = sanctuary_id
        self._guard = ReplayGuard(capacity)
        self.counts = array("I", bytes(4 * 5))  # per verdict

    def check(self, buf, length):
        """Return (verdict, values); values is None unless the beacon is accepted."""
        verdict = MALFORMED
        values = None
        try:
            values = unpack(BEACON, buf, 0, length)
        except ProtocolError:
            pass
        if values is not None:
            if values[BEACON_IX_SANCTUARY_ID] != self._sanctuary_id:
                verdict = FOREIGN
            elif not _same_tag(self._mac.digest(memoryview(buf)[:BEACON_AT_TAG]), buf, BEACON_AT_TAG):
                verdict = UNAUTHENTICATED
            elif not self._guard.admit(values[BEACON_IX_BED_ID], values[BEACON_IX_BOOT_EPOCH], values[BEACON_IX_SEQ]):
                verdict = REPLAYED
            else:
                verdict = ACCEPTED
        self.counts[verdict] += 1
        return verdict, values if verdict == ACCEPTED else None


def _same_tag(digest, buf, at):
    # Compare every byte whatever the first difference, so timing tells nothing.
    diff = 0
    for i in range(TAG_LEN):
        diff |= digest[i] ^ buf[at + i]
    return diff == 0
