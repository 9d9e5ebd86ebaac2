"""Beacon authentication: RFC 4231 vectors, tags and replay rules on host and firmware."""

import hmac

import pytest

from soma_protocol import auth
from soma_protocol.auth import VERDICTS

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core

# RFC 4231, test cases 1, 2 and 6 (key longer than the SHA-256 block).
RFC4231 = [
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (
        b"\xaa" * 131,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
]
KEY = bytes(range(32))
SANCTUARY = 7


@pytest.mark.parametrize(("key", "data", "expected"), RFC4231)
def test_hmac_vectors_host_and_firmware(firmware, key, data, expected):
    assert hmac.digest(key, data, "sha256").hex() == expected
    assert auth.beacon_tag(key, data).hex() == expected[:16]
    assert firmware.call("hmac", key=key.hex(), hex=data.hex()) == expected


def beacon(bed=2, epoch=1, seq=1, sanctuary=SANCTUARY, key=KEY):
    values = [sanctuary, bed, epoch, seq, 1, 1, 5, 10**9, 3, 4, 0, 2, 2, 120, 60, 12, 1, b""]
    return auth.sign_beacon(key, values)


def both(firmware, beacons, capacity=32, own_id=None):
    host = auth.BeaconVerifier(KEY, SANCTUARY, own_id=own_id, capacity=capacity)
    host_verdicts = [host.check(b)[0] for b in beacons]
    fw = firmware.call(
        "verify",
        key=KEY.hex(),
        sanctuary_id=SANCTUARY,
        beacons=[b.hex() for b in beacons],
        capacity=capacity,
        own_id=-1 if own_id is None else own_id,
    )
    assert [VERDICTS[v] for v in fw] == host_verdicts
    return host_verdicts


def test_replays_and_old_counters_are_refused(firmware):
    sequence = [
        beacon(seq=1),
        beacon(seq=2),
        beacon(seq=2),
        beacon(seq=1),
        beacon(epoch=0, seq=99),
        beacon(epoch=2, seq=0),
    ]
    assert both(firmware, sequence) == ["accepted", "accepted", "replayed", "replayed", "replayed", "accepted"]


def test_forged_tampered_foreign_and_broken_beacons(firmware):
    good = beacon(seq=5)
    values = auth.BEACON.unpack(good)
    values[1] = 99  # another bed id with a valid CRC: only the tag can tell
    tampered = auth.BEACON.pack(values)
    sequence = [beacon(seq=1, key=bytes(32)), tampered, beacon(sanctuary=8), good[:-1], good[:-1] + b"\0", good]
    assert both(firmware, sequence) == [
        "unauthenticated",
        "unauthenticated",
        "foreign",
        "malformed",
        "malformed",
        "accepted",
    ]


def test_a_beds_own_frames_played_back_to_it_are_dropped(firmware):
    # Genuine (signed, fresh) but claiming the receiver's own id: a capture replayed at it,
    # which needs no key. Before the replay guard, so the guard's table never holds it.
    sequence = [beacon(bed=4, seq=1), beacon(bed=4, seq=2), beacon(bed=2, seq=1), beacon(bed=4, seq=1)]
    assert both(firmware, sequence, own_id=4) == ["own", "own", "accepted", "own"]


def test_full_sender_table_forgets_the_least_recently_heard(firmware):
    sequence = [beacon(bed=1, seq=1), beacon(bed=2, seq=1), beacon(bed=1, seq=2), beacon(bed=3, seq=1)]
    # Capacity 2: bed 3 evicts bed 2 (heard less recently than bed 1), so bed 2's old beacon passes again.
    # Then bed 2 evicts bed 1, whose old beacon passes in turn (evicting bed 3); bed 2 is remembered.
    sequence += [beacon(bed=2, seq=1), beacon(bed=1, seq=2), beacon(bed=2, seq=1)]
    assert both(firmware, sequence, capacity=2) == ["accepted"] * 6 + ["replayed"]
