"""One serial line to a unit (a USB serial port, or a virtual bed's pseudo-terminal).

The management protocol and the REPL share the line; this class owns the port and hands
out the byte-level read/write that both speak over.
"""

import errno
from typing import Self

import serial

from soma.errors import SomaError, failure, one_line
from soma.link import traffic
from soma.link.management import ManagementClient
from soma_protocol.framing import FrameDecoder
from soma_protocol.schema import FRAME_FLAG


class SerialLink:
    IDLE_TIMEOUT = 0  # the port's read timeout between our own reads

    def __init__(self, port: str, baud: int = 115200) -> None:
        self.port = port
        self._serial = self._open(port, baud)
        self.capture: bytearray | None = None  # while set, every byte read() took (console_text)

    def _open(self, port: str, baud: int) -> serial.Serial:
        return open_port(port, baud, self.IDLE_TIMEOUT)

    def read(self, timeout: float) -> bytes:
        """Bytes waiting on the line, waiting up to `timeout` seconds for the first."""
        self._serial.timeout = timeout
        first = self._serial.read(1)
        rest = self._serial.read(self._serial.in_waiting) if first else b""
        self._serial.timeout = self.IDLE_TIMEOUT
        if self.capture is not None:
            self.capture += first + rest
        return first + rest

    def write(self, data: bytes) -> None:
        self._serial.write(data)
        self._serial.flush()

    def management(self) -> ManagementClient:
        return ManagementClient(self.read, self.write)

    def close(self) -> None:
        self._serial.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_port(port: str, baud: int, timeout: float) -> serial.Serial:
    """`port` opened exclusively (another program holding it makes it busy, as it should),
    its traffic logged when --verbose asks; a port that cannot be opened is the failure
    that names why (errors.CAUSES)."""
    try:
        line = serial.Serial(port, baud, timeout=timeout, exclusive=True)
    except serial.SerialException as exc:
        raise open_failure(port, exc) from None
    return traffic.logged(line)


def open_failure(port: str, exc: serial.SerialException) -> SomaError:
    """Why `port` could not be opened (pyserial's exception), as its cause."""
    code = exc.errno
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return failure("no_such_port", port=port)
    if code in (errno.EACCES, errno.EPERM):
        return failure("port_permission", port=port)
    if code in (errno.EAGAIN, errno.EBUSY) or "lock" in str(exc):
        return failure("port_busy", port=port)
    reason = {errno.EISDIR: "a directory", errno.ENOTTY: "not a terminal"}.get(code or 0, "")
    if "Inappropriate ioctl" in str(exc):  # pyserial configures a plain file: no errno of its own
        reason = "not a terminal"
    return failure("port_unusable", port=port, reason=reason or one_line(exc))


def console_lines(data: bytes) -> list[str]:
    """What a unit printed (a boot's console output, a traceback) among the bytes it sent:
    its management frames left out, one item per line that is not empty."""
    flag = bytes([FRAME_FLAG])
    text = b"".join(piece for piece in data.split(flag) if not FrameDecoder().feed(flag + piece + flag))
    return [line.strip() for line in text.decode(errors="replace").splitlines() if line.strip()]
