"""A virtual bed: the MicroPython unix port running a unit's flash directory, behind a
pseudo-terminal that pyserial and stock mpremote open like a USB serial port.

Two pseudo-terminals make one serial line: the MicroPython process owns pty A (its
controlling terminal, so Ctrl-C raises KeyboardInterrupt), users open pty B's path, and a
relay copies bytes between the two masters, paced to the line's baud rate if one is set.
pty B outlives the process, so resets keep the port, as a USB-UART bridge does.

Like a board: a flash directory with main.py boots it (`micropython -i main.py`, so the
REPL follows when the application ends or is interrupted); without one the unit is blank
and sits at the REPL. Ctrl-D at the REPL and `machine.soft_reset()` end the process
(status 0), which the supervisor restarts as a soft reset (printing "MPY: soft reboot" as
boards do). As on a board, a soft reset from the raw REPL skips main.py and comes back in
the raw REPL (mpremote relies on it). The relay knows the mode from what the REPL printed
last (the raw REPL's banner or the friendly prompt), so a Ctrl-B that a tool sends while
the process is ending does not count: on a board it reaches the next boot, and so it does
here. A board runs boot.py on every boot, before main.py; here boot.py runs when main.py
does not (`micropython -i boot.py`: a soft reset from the raw REPL, or no main.py), which
is when Soma's boot.py matters: it starts the REPL keeper that resets an idle unit into
its application (firmware/board.py, REPL_IDLE_MS), a job the application does itself
once it runs. The firmware's own reset request, the simulator's watchdog and power
cycles restart the process as hard resets (`reset()`), and so does an exit with any
other status: `machine.reset()` (`mpremote reset`) exits with one. The flash directory
is kept across all of them.

The ROM: the board's built-in modules that the unix port lacks (rom/machine.py: a
`machine` with reset()) come from the rom directory beside this file, on MICROPYPATH after
the flash directory and outside it, as a board's firmware image holds them: blank and
flashed units alike have them, and `mpremote fs ls` does not list them.

A tap (line_tap.LineTap) may listen to the line: the relay hands it every chunk, both ways,
as it reads it.
"""

import errno
import fcntl
import os
import select
import signal
import subprocess
import termios
import threading
import time
import tty
from pathlib import Path
from typing import TYPE_CHECKING

from soma import paths
from soma_protocol.enums import ResetCause

if TYPE_CHECKING:
    from soma.sim.line_tap import LineTap

# Reset causes, as the firmware reports them.
POWER_ON, HARD, WATCHDOG, SOFT = (
    int(cause) for cause in (ResetCause.power_on, ResetCause.hard, ResetCause.watchdog, ResetCause.soft)
)
SOFT_REBOOT_BANNER = b"MPY: soft reboot\r\n"
ROM_DIR = Path(__file__).resolve().parent / "rom"
ENTER_RAW_REPL = 0x01
RAW_REPL_BANNER, FRIENDLY_PROMPT = b"raw REPL; CTRL-B to exit", b">>> "


def _raw_terminal(fd: int, signals: bool) -> None:
    """Raw mode: bytes pass untouched. With `signals`, 0x03 still raises SIGINT."""
    tty.setraw(fd)
    if signals:
        attrs = termios.tcgetattr(fd)
        attrs[3] |= termios.ISIG
        termios.tcsetattr(fd, termios.TCSANOW, attrs)


class VirtualBed:
    def __init__(
        self,
        flash_dir: str | os.PathLike[str],
        serial: str,
        world_port: int,
        drift_ppb: int = 0,
        offset_us: int = 0,
        baud: int | None = None,
        heap: str = "96K",
        epoch_us: int = 0,
        radio_latency_us: int = 1000,
        tap: "LineTap | None" = None,
    ) -> None:
        self.flash_dir = os.fspath(flash_dir)
        os.makedirs(self.flash_dir, exist_ok=True)
        self.serial = serial
        self.world_port = world_port
        self.drift_ppb = drift_ppb
        self.offset_us = offset_us
        self.epoch_us = epoch_us  # host monotonic us at which the unit's clock read offset_us (0: its start)
        self.radio_latency_us = radio_latency_us
        self.baud = baud
        self.heap = heap
        self.tap = tap
        self.resets = {POWER_ON: 0, HARD: 0, WATCHDOG: 0, SOFT: 0}
        self._user_master, user_slave = os.openpty()
        _raw_terminal(user_slave, signals=False)
        self.port = os.ttyname(user_slave)
        self._user_slave = user_slave  # held open so the line stays up with no user attached
        os.set_blocking(self._user_master, False)
        self._process: subprocess.Popen[bytes] | None = None
        self._bed_master: int | None = None
        self._raw_repl = False  # the REPL's mode, from what it printed last
        self._said = b""  # the end of the process's output, for a banner split between reads
        self._retired: list[int] = []  # pty A masters of ended processes: only the relay thread closes them
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._relay = threading.Thread(target=self._relay_loop, name=f"bed-{serial}", daemon=True)

    # ---- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        self._boot(POWER_ON)
        self._relay.start()

    def stop(self) -> None:
        self._stopping.set()
        self._relay.join(timeout=5)
        with self._lock:
            self._kill()
        for fd in (*self._retired, self._user_master, self._user_slave):
            os.close(fd)
        self._retired = []

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def blank(self) -> bool:
        return not os.path.exists(os.path.join(self.flash_dir, "main.py"))

    def _boot(self, cause: int, raw_repl: bool = False) -> None:
        """Start the process on a fresh pty A (call with the lock held, or before the relay);
        with `raw_repl`, main.py is skipped and the REPL put in raw mode."""
        master, slave = os.openpty()
        _raw_terminal(slave, signals=True)
        env = dict(
            os.environ,
            MICROPYPATH=os.pathsep.join((self.flash_dir, str(ROM_DIR))),
            SOMA_SIM_WORLD_PORT=str(self.world_port),
            SOMA_SIM_SERIAL=self.serial,
            SOMA_SIM_DRIFT_PPB=str(self.drift_ppb),
            SOMA_SIM_OFFSET_US=str(self.offset_us),
            SOMA_SIM_EPOCH_US=str(self.epoch_us),
            SOMA_SIM_RADIO_LATENCY_US=str(self.radio_latency_us),
            SOMA_SIM_RESET_CAUSE=str(cause),
        )
        command = [paths.micropython(), "-X", f"heapsize={self.heap}"]
        if not self.blank and not raw_repl:
            command += ["-i", "main.py"]
        elif os.path.exists(os.path.join(self.flash_dir, "boot.py")):
            command += ["-i", "boot.py"]
        self._process = subprocess.Popen(
            command,
            cwd=self.flash_dir,
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            preexec_fn=_controlling_terminal,
            close_fds=True,
        )
        os.close(slave)
        os.set_blocking(master, False)
        self._bed_master = master
        self._raw_repl = raw_repl
        self._said = b""
        if raw_repl:
            os.write(master, bytes([ENTER_RAW_REPL]))
        self.resets[cause] += 1

    def _kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        if self._bed_master is not None:
            # Not closed here: the relay may be reading it right now, and a closed number
            # can be reused by the next pty at once. The relay closes it between reads.
            self._retired.append(self._bed_master)
            self._bed_master = None

    def reset(self, cause: int = HARD) -> None:
        """Hard reset or power cycle: the process ends wherever it is and boots again."""
        with self._lock:
            self._kill()
            self._boot(cause)

    def freeze(self) -> None:
        """Stall the whole unit (a hung loop): only the watchdog can bring it back."""
        assert self._process is not None, "the bed has not started"
        self._process.send_signal(signal.SIGSTOP)

    # ---- the serial line ---------------------------------------------------------

    def _relay_loop(self) -> None:
        rate = self.baud / 10 if self.baud else None  # 8N1: ten bits a byte
        while not self._stopping.is_set():
            with self._lock:
                bed = self._bed_master
                process = self._process
                retired, self._retired = self._retired, []
            for fd in retired:
                os.close(fd)
            if process is not None and process.poll() is not None:
                self._restart_after_exit(process)
                continue
            ready, _, _ = select.select([fd for fd in (bed, self._user_master) if fd is not None], [], [], 0.05)
            for source in ready:  # the bed first: its last words before an exit go out first
                destination = self._user_master
                data = _read(source)
                if source == self._user_master:
                    destination = self._bed_for_user(process)
                else:
                    self._track_repl_mode(data)
                if data and self.tap is not None:
                    self.tap.heard(data, source == bed, time.monotonic())
                if data and destination is not None:
                    self._send(destination, data, rate)

    def _send(self, fd: int, data: bytes, rate: float | None) -> None:
        for start in range(0, len(data), 64):
            chunk = data[start : start + 64]
            try:
                os.write(fd, chunk)
            except OSError as exc:  # a full line with nobody reading drops bytes, as a UART does
                if exc.errno not in (errno.EAGAIN, errno.EIO):
                    raise
            if rate:
                time.sleep(len(chunk) / rate)

    def _track_repl_mode(self, output: bytes) -> None:
        said = self._said + output
        raw, friendly = said.rfind(RAW_REPL_BANNER), said.rfind(FRIENDLY_PROMPT)
        if raw >= 0 or friendly >= 0:
            self._raw_repl = raw > friendly
        self._said = said[-len(RAW_REPL_BANNER) :]

    def _bed_for_user(self, process: "subprocess.Popen[bytes] | None") -> int | None:
        """Where the user's bytes go. A process that ended since the relay looked is
        restarted first, in the REPL mode it ended in: a board resets at once, so what a
        tool sends after seeing the reset's output (mpremote's Ctrl-B after an exec of
        machine.soft_reset()) reaches the new boot, mode switches included."""
        if process is not None and process.poll() is not None:
            self._restart_after_exit(process)
        with self._lock:
            return self._bed_master

    def _restart_after_exit(self, process: "subprocess.Popen[bytes]") -> None:
        with self._lock:
            if process is not self._process:
                return  # reset meanwhile (the world's reset, a power cycle)
            status = process.returncode
            self._kill()
            if status == 0:  # Ctrl-D at the REPL ends the unix port: a board soft-resets
                self._send(self._user_master, SOFT_REBOOT_BANNER, None)
                self._boot(SOFT, raw_repl=self._raw_repl)
            else:  # machine.reset(), or the interpreter died: as a board, it comes back from reset
                self._boot(HARD)


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""
    except OSError as exc:  # EIO: the other side of the pty is gone (a process restarting)
        if exc.errno == errno.EIO:
            return b""
        raise


def _controlling_terminal() -> None:
    """In the child: a session of its own with pty A as controlling terminal (for Ctrl-C)."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
