"""The serial and management traffic of `soma --verbose` (or `--log FILE`): every line a
command opens logs what crosses it, both ways, to the "soma.traffic" logger.

Management frames are logged decoded (kind, message, sequence number, payload summary);
anything else on the line (the REPL, a boot's console output, another device's answers)
as raw bytes, a line at a time:

    0.412 /dev/pts/7 host> request info seq 1 {}
    0.415 /dev/pts/7 unit> response info seq 1 {"firmware_version": "1.4.0", ...}
    0.530 /dev/pts/7 unit> raw b'MicroPython v1.24 on ...\\r\\n>>> '
"""

import json
import logging
import threading
import time
from typing import IO, Any, cast

import serial

from soma_protocol import codec
from soma_protocol.enums import FrameKind, MessageId
from soma_protocol.framing import FrameDecoder
from soma_protocol.schema import FRAME_BODY_MAX, FRAME_FLAG

LOG = logging.getLogger("soma.traffic")
SUMMARY_CHARS = 160  # of a payload's JSON, per log line
RAW_CHARS = 400  # of raw bytes held before they are logged without a line end
_FLAG = bytes([FRAME_FLAG])
_STARTED = time.monotonic()


def configure(stream: IO[str]) -> None:
    """Log the traffic of every line opened from now on to `stream` (only: --log FILE
    given after --verbose moves the log from stderr to FILE)."""
    for old in list(LOG.handlers):
        LOG.removeHandler(old)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.DEBUG)
    LOG.propagate = False


def logged(line: serial.Serial) -> serial.Serial:
    """`line` itself, or, while the traffic is logged, a stand-in that logs what crosses it
    (the REPL transport and the management client both read and write through it)."""
    if not LOG.isEnabledFor(logging.DEBUG):
        return line
    return cast(serial.Serial, _LoggedLine(line))


class _Direction:
    """One direction of a line: bytes gathered until they make a frame or a line of text."""

    def __init__(self, port: str, label: str) -> None:
        self.prefix = f"{port} {label}>"
        self.pending = b""

    def take(self, data: bytes) -> None:
        self.pending += data
        while self.pending:
            if self.pending.startswith(_FLAG):
                end = self.pending.find(_FLAG, 1)
                if end < 0:
                    if len(self.pending) > 2 * FRAME_BODY_MAX + 2:  # no frame is this long: noise
                        self._raw(self.pending)
                        self.pending = b""
                    return
                piece, self.pending = self.pending[: end + 1], self.pending[end:]  # the closing flag may open the next
                if len(piece) > 2:
                    self._frame(piece)
                continue
            flag = self.pending.find(_FLAG)
            text = self.pending if flag < 0 else self.pending[:flag]
            cut = len(text) if flag >= 0 or len(text) > RAW_CHARS else text.rfind(b"\n") + 1
            if not cut:
                return  # a line still arriving
            self._raw(self.pending[:cut])
            self.pending = self.pending[cut:]

    def flush(self) -> None:
        # A leading flag is most often the last frame's closing one, not a frame cut short.
        data = self.pending[1:] if self.pending.startswith(_FLAG) else self.pending
        if data:
            self._raw(data)
        self.pending = b""

    def _frame(self, wire: bytes) -> None:
        decoder = FrameDecoder()
        bodies = decoder.feed(wire)
        if not bodies:
            self._raw(wire[:-1])
            return
        try:
            kind, seq, msg, payload = codec.decode("frame", bodies[0])
            name = codec.payload_name(kind, msg)
            summary = json.dumps(codec.render(name, codec.decode(name, payload)), default=str)
        except (codec.ProtocolError, ValueError, KeyError) as exc:
            _log(f"{self.prefix} undecodable frame ({exc}): {bodies[0].hex()}")
            return
        if len(summary) > SUMMARY_CHARS:
            summary = summary[: SUMMARY_CHARS - 3] + "..."
        _log(f"{self.prefix} {_name(FrameKind, kind)} {_name(MessageId, msg)} seq {seq} {summary}")

    def _raw(self, data: bytes) -> None:
        _log(f"{self.prefix} raw {data!r}")


def _name(enum: Any, value: int) -> str:
    try:
        return str(enum(value).name)
    except ValueError:
        return str(value)


def _log(text: str) -> None:
    LOG.debug(f"{time.monotonic() - _STARTED:8.3f} {text}")


class _LoggedLine:
    """A serial.Serial that logs what is read from it and written to it."""

    _line: serial.Serial
    _in: _Direction
    _out: _Direction
    _lock: threading.Lock

    def __init__(self, line: serial.Serial) -> None:
        port = str(line.port)
        object.__setattr__(self, "_line", line)  # past __setattr__, which sets the port's own
        object.__setattr__(self, "_in", _Direction(port, "unit"))
        object.__setattr__(self, "_out", _Direction(port, "host"))
        object.__setattr__(self, "_lock", threading.Lock())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._line, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._line, name, value)

    def read(self, size: int = 1) -> bytes:
        data = self._line.read(size)
        if data:
            with self._lock:
                self._out.flush()
                self._in.take(data)
        return data

    def write(self, data: bytes) -> int | None:
        with self._lock:
            self._in.flush()
            self._out.take(bytes(data))
        return self._line.write(data)

    def close(self) -> None:
        with self._lock:
            self._in.flush()
            self._out.flush()
        self._line.close()
