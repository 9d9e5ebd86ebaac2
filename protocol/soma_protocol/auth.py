"""Beacon authentication and replay protection (host side).

Same rules and verdicts as `firmware/beacon_auth.py`: tag = HMAC-SHA256(key, beacon
bytes before the tag) truncated to TAG_LEN; a sender's (boot_epoch, seq) must strictly
increase; a full sender table forgets the least recently heard sender.
"""

import hmac
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from .codec import ProtocolError
from .enums import RadioVerdict
from .fast import FixedLayout
from .ir import all_messages
from .schema import TAG_LEN

# The schema's RadioVerdict names, indexed by value (the firmware counts by them too).
VERDICTS = tuple(verdict.name for verdict in sorted(RadioVerdict))

BEACON = FixedLayout("beacon")
_FIELDS = [leaf.path for leaf in all_messages()["beacon"].fields]
_SANCTUARY, _BED, _EPOCH, _SEQ = (_FIELDS.index(name) for name in ("sanctuary_id", "bed_id", "boot_epoch", "seq"))
TAG_AT = BEACON.size - 4 - TAG_LEN  # the tag is the last field before the CRC
# Beacon values are the fast codec's unpacked struct values (ints, bytes): `Any`.


def beacon_tag(key: bytes, signed: bytes) -> bytes:
    """Truncated HMAC-SHA256 of the signed bytes (RFC 2104)."""
    return hmac.digest(key, signed, "sha256")[:TAG_LEN]


def sign_beacon(key: bytes, values: Sequence[Any]) -> bytes:
    """Beacon bytes for `values` (a value list; its tag item is replaced by the real tag)."""
    values = list(values)
    values[-1] = bytes(TAG_LEN)
    values[-1] = beacon_tag(key, BEACON.pack(values)[:TAG_AT])
    return BEACON.pack(values)


def signed_beacon(key: bytes, **fields: Any) -> bytes:
    """A signed beacon of these fields, by name (`seq=7`); the fields not given are 0."""
    unknown = set(fields) - set(_FIELDS)
    if unknown:
        raise ValueError(f"beacons have no field {sorted(unknown)[0]!r}")
    return sign_beacon(key, [fields.get(name, 0) for name in _FIELDS])


class ReplayGuard:
    """Last (boot_epoch, seq) per sender, at most `capacity` senders (LRU)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._last: OrderedDict[int, tuple[int, int]] = OrderedDict()

    def admit(self, sender: int, epoch: int, seq: int) -> bool:
        """True and remembered if (epoch, seq) is newer than anything from sender."""
        last = self._last.get(sender)
        if last is not None and (epoch, seq) <= last:
            return False
        if last is None and len(self._last) >= self.capacity:
            self._last.popitem(last=False)
        self._last[sender] = (epoch, seq)
        self._last.move_to_end(sender)
        return True


class BeaconVerifier:
    """Checks beacons in order: shape and CRC, sanctuary, tag, the receiver's own bed id
    (when it is a bed: `own_id`), replay."""

    def __init__(self, key: bytes, sanctuary_id: int, own_id: int | None = None, capacity: int = 32) -> None:
        self._key = bytes(key)
        self._sanctuary_id = sanctuary_id
        self._own_id = own_id
        self._guard = ReplayGuard(capacity)
        self.counts = dict.fromkeys(VERDICTS, 0)

    def check(self, data: bytes) -> tuple[str, list[Any] | None]:
        """Return (verdict, values); values is None unless the beacon is accepted."""
        try:
            values = BEACON.unpack(data)
        except ProtocolError:
            values = None
        if values is None:
            verdict = RadioVerdict.malformed
        elif values[_SANCTUARY] != self._sanctuary_id:
            verdict = RadioVerdict.foreign
        elif not hmac.compare_digest(beacon_tag(self._key, data[:TAG_AT]), values[-1]):
            verdict = RadioVerdict.unauthenticated
        elif values[_BED] == self._own_id:
            verdict = RadioVerdict.own
        elif not self._guard.admit(values[_BED], values[_EPOCH], values[_SEQ]):
            verdict = RadioVerdict.replayed
        else:
            verdict = RadioVerdict.accepted
        self.counts[verdict.name] += 1
        return verdict.name, values if verdict == RadioVerdict.accepted else None
