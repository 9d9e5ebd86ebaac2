"""The generated firmware codec, running under real MicroPython, as a host service.

One long-lived `micropython` process (host/soma/mp/codec_service.py) answers JSON
requests over a pipe, so tests and tools can put thousands of cases through the
firmware's own code without starting a process per case.
"""

import json
import os
import re
import struct
import subprocess
from pathlib import Path

from soma_protocol.codegen import layout_ids

from . import paths

LAYOUT_IDS = layout_ids()  # message name -> the generated codec's layout id
LAYOUT_NAMES = {index: name for name, index in LAYOUT_IDS.items()}

SERVICE = Path(__file__).resolve().parent / "mp" / "codec_service.py"


class FirmwareProtocolError(ValueError):
    """The firmware codec rejected the input with its own ProtocolError."""


class FirmwareCrash(RuntimeError):
    """The firmware code raised something other than its ProtocolError: a defect."""


def to_json(value):
    if isinstance(value, bytes | bytearray):
        return ["b", bytes(value).hex()]
    if isinstance(value, float):
        return ["f", struct.pack("<d", value).hex()]
    return value


def from_json(value):
    if isinstance(value, list):
        raw = bytes.fromhex(value[1])
        return raw if value[0] == "b" else struct.unpack("<d", raw)[0]
    return value


class FirmwareCodec:
    """A running MicroPython codec service; use as a context manager or call close()."""

    def __init__(self, heapsize="256K"):
        env = dict(os.environ, MICROPYPATH=str(paths.firmware_dir()))
        self._proc = subprocess.Popen(
            [paths.micropython(), "-X", f"heapsize={heapsize}", str(SERVICE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            bufsize=1,
        )

    def call(self, op, **args):
        self._proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise FirmwareCrash(f"micropython codec service exited: {self._proc.stderr.read().strip()}")
        answer = json.loads(line)
        if "ok" in answer:
            return answer["ok"]
        if "protocol_error" in answer:
            # The firmware knows messages by layout id only: put the name back for people.
            message = re.sub(r"^layout (\d+)", lambda m: LAYOUT_NAMES.get(int(m[1]), m[0]), answer["protocol_error"])
            raise FirmwareProtocolError(message)
        raise FirmwareCrash(answer["crash"])

    def unpack(self, name, data):
        return [from_json(v) for v in self.call("unpack", layout=LAYOUT_IDS[name], hex=bytes(data).hex())]

    def judge(self, name, inputs):
        """Decode a batch in one round trip: a value list per input, None where rejected."""
        answers = self.call("judge", layout=LAYOUT_IDS[name], inputs=[bytes(data).hex() for data in inputs])
        return [None if values is None else [from_json(v) for v in values] for values in answers]

    def pack(self, name, values):
        return bytes.fromhex(self.call("pack", layout=LAYOUT_IDS[name], values=[to_json(v) for v in values]))

    def close(self):
        if self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for stream in (self._proc.stdout, self._proc.stderr):
            stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
