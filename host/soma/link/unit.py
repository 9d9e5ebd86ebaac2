"""One unit on a serial line: the raw REPL (mpremote's SerialTransport, reused as it is)
and the management protocol share the line; this class owns it.

Errors a user can act on become their cause (soma.errors.CAUSES): no such port, port busy,
permission denied, not a MicroPython board, timeouts.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import cast

import serial
from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

from soma.errors import failure, one_line
from soma.link import traffic
from soma.link.serial_link import SerialLink, open_failure


class UnitLink(SerialLink):
    """A SerialLink whose port mpremote's transport opened, so the REPL can share it."""

    IDLE_TIMEOUT = 1  # finite: mpremote reads pseudo-terminals byte by byte with it

    def _open(self, port: str, baud: int) -> serial.Serial:
        try:
            self.transport = SerialTransport(port, baudrate=baud, exclusive=True, timeout=self.IDLE_TIMEOUT)
        except TransportError:  # it says only "failed to access": open it again for the reason
            try:
                serial.Serial(port, baud, exclusive=True).close()
            except serial.SerialException as exc:
                raise open_failure(port, exc) from None
            raise failure("port_unusable", port=port, reason="mpremote cannot open it") from None
        # mpremote swaps in a SerialIntercept only while it mounts a host directory: never here.
        self.transport.serial = traffic.logged(cast(serial.Serial, self.transport.serial))
        return cast(serial.Serial, self.transport.serial)

    # ---- the REPL
    @contextmanager
    def raw_repl(self, attempts: int = 3) -> Iterator["UnitLink"]:
        """Interrupt whatever runs (Ctrl-C) and hold the raw REPL for the block. A unit still
        starting up may miss the first Ctrl-C: try again a few times."""
        for attempt in range(attempts):
            if self._enter_raw_repl():
                break
            if attempt == attempts - 1:
                raise failure("no_repl", port=self.port)
            time.sleep(0.5)
        try:
            yield self
        finally:
            self.transport.exit_raw_repl()

    def _enter_raw_repl(self) -> bool:
        # mpremote's enter_raw_repl without its soft reset, and without its print() of what
        # arrived on a failure (it would land in this process's stdout, from any thread).
        transport = self.transport
        transport.serial.write(b"\r\x03")  # Ctrl-C: interrupt the application
        cast(serial.Serial, transport.serial).reset_input_buffer()
        transport.serial.write(b"\r\x01")  # Ctrl-A: raw REPL
        banner = b"raw REPL; CTRL-B to exit\r\n"
        if not transport.read_until(1, banner, timeout_overall=3).endswith(banner):
            return False
        transport.in_raw_repl = True
        return True

    def exec(self, code: str | bytes, timeout: int = 30, feed: Callable[[serial.Serial], bytes] | None = None) -> bytes:
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
                unexpected = feed(cast(serial.Serial, self.transport.serial))
                if unexpected == b"\x04":  # the end of the code's output: only its error follows
                    output, error = b"", self.transport.read_until(1, b"\x04", timeout=timeout)[:-1]
                else:
                    output, error = self.transport.follow(timeout)
                    output = unexpected + output
        except TransportError as exc:
            raise failure("stopped_answering", port=self.port, detail=one_line(exc)) from None
        if error:
            raise failure("unit_raised", port=self.port, error=error.decode(errors="replace").strip().splitlines()[-1])
        return output

    def restart_raw_repl(self) -> None:
        """Ctrl-D at the raw REPL (inside raw_repl()): the unit boots again without its
        application (boot.py runs, main.py does not) and comes back to the raw REPL with
        its heap whole, not in the pieces a stopped application left."""
        transport = self.transport
        transport.serial.write(b"\x04")
        for ending in (b"soft reboot\r\n", b"raw REPL; CTRL-B to exit\r\n"):
            if not transport.read_until(1, ending, timeout_overall=10).endswith(ending):
                raise failure("no_repl", port=self.port)

    def soft_reset(self) -> None:
        """Ctrl-D at the friendly REPL: the unit boots again from its flash."""
        self.transport.exit_raw_repl()
        self.write(b"\x04")

    def close(self) -> None:
        self.transport.close()
