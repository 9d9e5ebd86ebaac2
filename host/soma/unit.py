"""One unit on a serial line: the raw REPL (mpremote's SerialTransport, reused as it is)
and the management protocol share the line; this class owns it.

Errors a user can act on become SomaError (exit status 2): no such port, port busy, not a
MicroPython board, timeouts.
"""

import os
import time
from contextlib import contextmanager

from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

from .errors import SomaError
from .serial_link import SerialLink


class UnitLink(SerialLink):
    """A SerialLink whose port mpremote's transport opened, so the REPL can share it."""

    IDLE_TIMEOUT = 1  # finite: mpremote reads pseudo-terminals byte by byte with it

    def _open(self, port, baud):
        if not os.path.exists(port):
            raise SomaError(f"{port}: no such port")
        try:
            self.transport = SerialTransport(port, baudrate=baud, exclusive=True, timeout=self.IDLE_TIMEOUT)
        except TransportError:
            raise SomaError(f"{port}: cannot open it (busy, or not a serial port)") from None
        return self.transport.serial

    # ---- the REPL
    @contextmanager
    def raw_repl(self, attempts=3):
        """Interrupt whatever runs (Ctrl-C) and hold the raw REPL for the block. A unit still
        starting up may miss the first Ctrl-C: try again a few times."""
        for attempt in range(attempts):
            if self._enter_raw_repl():
                break
            if attempt == attempts - 1:
                raise SomaError(f"{self.port}: no MicroPython REPL answers (not a MicroPython board?)")
            time.sleep(0.5)
        try:
            yield self
        finally:
            self.transport.exit_raw_repl()

    def _enter_raw_repl(self):
        # mpremote's enter_raw_repl without its soft reset, and without its print() of what
        # arrived on a failure (it would land in this process's stdout, from any thread).
        transport = self.transport
        transport.serial.write(b"\r\x03")  # Ctrl-C: interrupt the application
        transport.serial.reset_input_buffer()
        transport.serial.write(b"\r\x01")  # Ctrl-A: raw REPL
        banner = b"raw REPL; CTRL-B to exit\r\n"
        if not transport.read_until(1, banner, timeout_overall=3).endswith(banner):
            return False
        transport.in_raw_repl = True
        return True

    def exec(self, code, timeout=30):
        """Run code in the raw REPL; return what it printed. A device-side exception is a SomaError."""
        try:
            output, error = self.transport.exec_raw(code, timeout=timeout)
        except TransportError as exc:
            raise SomaError(f"{self.port}: {exc}") from None
        if error:
            raise SomaError(f"{self.port}: the unit raised: {error.decode(errors='replace').strip().splitlines()[-1]}")
        return output

    def soft_reset(self):
        """Ctrl-D at the friendly REPL: the unit boots again from its flash."""
        self.transport.exit_raw_repl()
        self.write(b"\x04")

    def close(self):
        self.transport.close()
