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
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeAlias

from soma import paths
from soma_protocol.codegen import layout_ids

LAYOUT_IDS = layout_ids()  # message name -> the generated codec's layout id
LAYOUT_NAMES = {index: name for name, index in LAYOUT_IDS.items()}

SERVICE = Path(__file__).resolve().parent.parent / "mp" / "codec_service.py"

WireValue: TypeAlias = int | float | bytes  # one decoded field, as both codecs give it
JsonValue: TypeAlias = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]


class FirmwareProtocolError(ValueError):
    """The firmware codec rejected the input with its own ProtocolError."""


class FirmwareCrash(RuntimeError):
    """The firmware code raised something other than its ProtocolError: a defect."""


def to_json(value: WireValue | bytearray) -> JsonValue:
    if isinstance(value, bytes | bytearray):
        return ["b", bytes(value).hex()]
    if isinstance(value, float):
        return ["f", struct.pack("<d", value).hex()]
    return value


def from_json(value: JsonValue) -> WireValue:
    if isinstance(value, list):
        raw = bytes.fromhex(str(value[1]))
        return raw if value[0] == "b" else struct.unpack("<d", raw)[0]
    # Anything else the service sends for a field is a JSON number.
    return value  # pyright: ignore[reportReturnType]


class FirmwareCodec:
    """A running MicroPython codec service; use as a context manager or call close()."""

    def __init__(self, heapsize: str = "256K") -> None:
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
        self._stdin, self._stdout, self._stderr = _pipes(self._proc)

    # Any: the service's JSON answer (json.loads), whose shape depends on `op`.
    def call(self, op: str, **args: object) -> Any:
        self._stdin.write(json.dumps({"op": op, **args}) + "\n")
        self._stdin.flush()
        line = self._stdout.readline()
        if not line:
            raise FirmwareCrash(f"micropython codec service exited: {self._stderr.read().strip()}")
        answer = json.loads(line)
        if "ok" in answer:
            return answer["ok"]
        if "protocol_error" in answer:
            # The firmware knows messages by layout id only: put the name back for people.
            message = re.sub(r"^layout (\d+)", lambda m: LAYOUT_NAMES.get(int(m[1]), m[0]), answer["protocol_error"])
            raise FirmwareProtocolError(message)
        raise FirmwareCrash(answer["crash"])

    def unpack(self, name: str, data: bytes | bytearray) -> list[WireValue]:
        return [from_json(v) for v in self.call("unpack", layout=LAYOUT_IDS[name], hex=bytes(data).hex())]

    def judge(self, name: str, inputs: Iterable[bytes | bytearray]) -> list[list[WireValue] | None]:
        """Decode a batch in one round trip: a value list per input, None where rejected."""
        answers = self.call("judge", layout=LAYOUT_IDS[name], inputs=[bytes(data).hex() for data in inputs])
        return [None if values is None else [from_json(v) for v in values] for values in answers]

    def pack(self, name: str, values: Sequence[WireValue]) -> bytes:
        return bytes.fromhex(self.call("pack", layout=LAYOUT_IDS[name], values=[to_json(v) for v in values]))

    def close(self) -> None:
        if self._proc.poll() is None:
            self._stdin.close()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for stream in (self._stdout, self._stderr):
            stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _pipes(proc: subprocess.Popen[str]) -> tuple[IO[str], IO[str], IO[str]]:
    """The stdin, stdout and stderr of a process started with all three piped."""
    stdin, stdout, stderr = proc.stdin, proc.stdout, proc.stderr
    assert stdin is not None and stdout is not None and stderr is not None, "started with PIPE"
    return stdin, stdout, stderr
