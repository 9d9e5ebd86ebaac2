"""Beacon authentication and replay protection (host side).

Same rules and verdicts as `firmware/beacon_auth.py`: tag = HMAC-SHA256(key, beacon
bytes before the tag) truncated to TAG_LEN; a sender's (boot_epoch, seq) must strictly
increase; a full sender table forgets the least recently heard sender.
"""

import hmac
from collections import OrderedDict

from .codec import ProtocolError
from .fast import FixedLayout
from .ir import all_messages
from .schema import TAG_LEN, RadioVerdict

# The schema's RadioVerdict names, indexed by value (the firmware counts by them too).
VERDICTS = tuple(str(name) for name, _ in sorted(RadioVerdict.encmapping.items(), key=lambda item: int(item[1])))

BEACON = FixedLayout("beacon")
_FIELDS = [leaf.path for leaf in all_messages()["beacon"].fields]
_SANCTUARY, _BED, _EPOCH, _SEQ = (_FIELDS.index(name) for name in ("sanctuary_id", "bed_id", "boot_epoch", "seq"))
TAG_AT = BEACON.size - 4 - TAG_LEN  # the tag is the last field before the CRC


def beacon_tag(key, signed):
    """Truncated HMAC-SHA256 of the signed bytes (RFC 2104)."""
    return hmac.digest(key, signed, "sha256")[:TAG_LEN]


def sign_beacon(key, values):
    """Beacon bytes for `values` (a value list; its tag item is replaced by the real tag)."""
    values = list(values)
    values[-1] = bytes(TAG_LEN)
    values[-1] = beacon_tag(key, BEACON.pack(values)[:TAG_AT])
    return BEACON.pack(values)


class ReplayGuard:
    """Last (boot_epoch, seq) per sender, at most `capacity` senders (LRU)."""

    def __init__(self, capacity):
        self.capacity = capacity
        self._last = OrderedDict()

    def admit(self, sender, epoch, seq):
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

    def __init__(self, key, sanctuary_id, own_id=None, capacity=32):
        self._key = bytes(key)
        self._sanctuary_id = sanctuary_id
        self._own_id = own_id
        self._guard = ReplayGuard(capacity)
        self.counts = dict.fromkeys(VERDICTS, 0)

    def check(self, data):
        """Return (verdict, values); values is None unless the beacon is accepted."""
        try:
            values = BEACON.unpack(data)
        except ProtocolError:
            values = None
        if values is None:
            verdict = "malformed"
        elif values[_SANCTUARY] != self._sanctuary_id:
            verdict = "foreign"
        elif not hmac.compare_digest(beacon_tag(self._key, data[:TAG_AT]), values[-1]):
            verdict = "unauthenticated"
        elif values[_BED] == self._own_id:
            verdict = "own"
        elif not self._guard.admit(values[_BED], values[_EPOCH], values[_SEQ]):
            verdict = "replayed"
        else:
            verdict = "accepted"
        self.counts[verdict] += 1
        return verdict, values if verdict == "accepted" else None
