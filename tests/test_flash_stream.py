"""The flasher's byte stream, unit side under MicroPython: whatever the data (every byte
value, escapes on block edges, runs of escaped bytes), the unit's _Wire + deflate read
back exactly what the host sent, acknowledging every block, and the stream never carries
a byte a terminal or a REPL would act on."""

import hashlib
import os
import random
import subprocess
import zlib

import pytest

from soma import paths
from soma.station import flashing

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core

FORBIDDEN = bytes([1, 2, 3, 4, 5, 10, 13, 26, 27, 28])


def unit_reads(wire, plain_size):
    """Run the unit's helpers under MicroPython with `wire` on stdin; return (sha256 of what
    it unpacked, what it wrote to stdout)."""
    program = (
        "import sys, io, deflate, hashlib, binascii, os, json, gc\n"
        + flashing._UNIT_HELPERS
        + f"\nz = deflate.DeflateIO(_Wire({len(wire)}), deflate.ZLIB)\n"
        + f"data = z.read({plain_size})\n"
        + "sys.stdout.write(' ' + binascii.hexlify(hashlib.sha256(data).digest()).decode())\n"
    )
    result = subprocess.run(
        [paths.micropython(), "-X", "heapsize=96K", "-c", program], input=wire, capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()
    acks, _, digest = result.stdout.decode().rpartition(" ")
    return digest, acks


def packed(data, bits=15):
    packer = zlib.compressobj(9, zlib.DEFLATED, bits)
    return flashing._escape(packer.compress(data) + packer.flush())


@pytest.mark.parametrize(
    "data",
    [
        bytes(range(256)) * 40,  # every byte value, escapes everywhere
        bytes(FORBIDDEN) * 700,
        os.urandom(5000),
        random.Random(3).randbytes(30_000),
    ],
    ids=["all-bytes", "only-escaped", "random", "large"],
)
def test_the_unit_unpacks_exactly_what_was_sent(data):
    wire = packed(data)
    assert not any(byte in FORBIDDEN[:-1] for byte in wire.replace(b"\x1b", b""))  # only ESC pairs remain
    digest, acks = unit_reads(wire, len(data))
    assert digest == hashlib.sha256(data).hexdigest()
    assert acks == flashing.ACK.decode() * -(-len(wire) // flashing.BLOCK)  # one per block


def test_an_escape_on_every_block_edge_is_carried_over():
    # Escaped bytes placed so that the ESC of a pair is the last byte of a block, block
    # after block: the unit must carry the pair over. Read through _Wire alone (no deflate).
    plain, wire_length = bytearray(), 0
    while wire_length < 12 * flashing.BLOCK:
        at_edge = wire_length % flashing.BLOCK == flashing.BLOCK - 1
        plain.append(FORBIDDEN[len(plain) % len(FORBIDDEN)] if at_edge else 0x41 + len(plain) % 26)
        wire_length += 2 if at_edge else 1
    wire = flashing._escape(bytes(plain))
    assert all(wire[edge] == 0x1B for edge in range(flashing.BLOCK - 1, len(wire) - 1, flashing.BLOCK))
    program = (
        "import sys, io, deflate, hashlib, binascii, os, json, gc\n"
        + flashing._UNIT_HELPERS
        + f"\nw = _Wire({len(wire)})\nout = bytearray()\nb = bytearray(300)\n"
        + "while True:\n    n = w.readinto(b)\n    if not n:\n        break\n    out += b[:n]\n"
        + "sys.stdout.write(' ' + binascii.hexlify(hashlib.sha256(out).digest()).decode())\n"
    )
    result = subprocess.run([paths.micropython(), "-c", program], input=wire, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().rpartition(" ")[2] == hashlib.sha256(bytes(plain)).hexdigest()
