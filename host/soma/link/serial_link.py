"""One serial line to a unit (a USB serial port, or a virtual bed's pseudo-terminal).

The management protocol and the REPL share the line; this class owns the port and hands
out the byte-level read/write that both speak over.
"""

from typing import Self

import serial

from soma.errors import SomaError, one_line
from soma.link.management import ManagementClient


class SerialLink:
    IDLE_TIMEOUT = 0  # the port's read timeout between our own reads

    def __init__(self, port: str, baud: int = 115200) -> None:
        self.port = port
        self._serial = self._open(port, baud)

    def _open(self, port: str, baud: int) -> serial.Serial:
        try:
            return serial.Serial(port, baud, timeout=self.IDLE_TIMEOUT, exclusive=True)
        except serial.SerialException as exc:
            raise SomaError(f"cannot open {port}: {_reason(exc)}") from None

    def read(self, timeout: float) -> bytes:
        """Bytes waiting on the line, waiting up to `timeout` seconds for the first."""
        self._serial.timeout = timeout
        first = self._serial.read(1)
        rest = self._serial.read(self._serial.in_waiting) if first else b""
        self._serial.timeout = self.IDLE_TIMEOUT
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


def _reason(exc: Exception) -> str:
    text = str(exc)
    if "No such file" in text or ("could not open port" in text and "2]" in text):
        return "no such port"
    if "busy" in text.lower() or "lock" in text.lower():
        return "port busy"
    return one_line(exc)
