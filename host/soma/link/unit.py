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

    def exec(self, code, timeout=30, feed=None):
        """Run code in the raw REPL; return what it printed. A device-side exception is a SomaError.

        With `feed`, the code reads its input from the line: `feed(serial)` is called once
        the code runs, to send that input and read the code's answers on the way; it returns
        the first byte it read that was not an answer (the code failed), or b"".
        """
        try:
            if feed is None:
                output, error = self.transport.exec_raw(code, timeout=timeout)
            else:
                self.transport.exec_raw_no_follow(code)
                unexpected = feed(self.transport.serial)
                if unexpected == b"\x04":  # the end of the code's output: only its error follows
                    output, error = b"", self.transport.read_until(1, b"\x04", timeout=timeout)[:-1]
                else:
                    output, error = self.transport.follow(timeout)
                    output = unexpected + output
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
