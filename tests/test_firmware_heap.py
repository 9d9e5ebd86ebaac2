"""The protocol modules as deployed (.mpy from mpy-cross) work inside the board's 96 KiB heap."""

import subprocess

import pytest

from soma import paths
from soma.station.firmware_build import compile_tree
from soma_protocol import codegen

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core

SCRIPT = """
BEACON_SIZE = {beacon_size}
ACCEPTED, REPLAYED = {accepted}, {replayed}
import gc
gc.collect()
before = gc.mem_alloc()
import beacon_auth, frame_link, wire_codec
gc.collect()
loaded = gc.mem_alloc() - before
mac = beacon_auth.HmacSha256(bytes(32))
buf = bytearray(BEACON_SIZE)
values = [7, 2, 1, 1, 1, 2, 3, 4, 5, 6, 7, 2, 1, 100, 50, -3, 0, b""]
beacon_auth.pack_signed(0, mac, buf, values)
verifier = beacon_auth.BeaconVerifier(bytes(32), 7)
assert verifier.check(buf, len(buf))[0] == ACCEPTED
assert verifier.check(buf, len(buf))[0] == REPLAYED
out = bytearray()
frame_link.write_frame(buf, len(buf), bytearray(16), lambda chunk, count: out.extend(chunk[:count]))
n = len(out)
reader = frame_link.FrameReader()
lengths = [reader.push(b) for b in out[:n]]
assert lengths[-1] == len(buf) and reader.body[: len(buf)] == buf
def measure(reader, out, n):
    # In a function: a new module global would grow the globals dict mid-measurement.
    gc.collect()
    before = gc.mem_alloc()
    gc.disable()
    for i in range(n):
        reader.push(out[i])
    allocated = gc.mem_alloc() - before
    gc.enable()
    return allocated
print("ok", loaded, measure(reader, out, n))
"""


def test_protocol_modules_fit_the_heap_and_decode_without_allocating(tmp_path):
    compile_tree(tmp_path)
    script = tmp_path / "probe.py"
    constants = codegen.constants()
    script.write_text(
        SCRIPT.format(
            beacon_size=constants["BEACON_SIZE"],
            accepted=constants["RADIO_VERDICT_ACCEPTED"],
            replayed=constants["RADIO_VERDICT_REPLAYED"],
        )
    )
    result = subprocess.run(
        [paths.micropython(), "-X", "heapsize=96K", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"MICROPYPATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    status, loaded, per_frame = result.stdout.split()
    assert status == "ok"
    assert int(loaded) < 32 * 1024  # the codec must leave most of the heap to the application
    assert int(per_frame) == 0  # the byte-by-byte frame reader allocates nothing
