"""A calibration bath on its own pseudo-terminal, speaking a small SCPI-like text protocol
(one command per line, answers end with "\\n"):

    *IDN?            -> SomaSim,CalBath-1,<serial>,1.0
    SOUR:TEMP <degC> -> set the bath's target (5..60 degC); no answer
    SOUR:TEMP?       -> the target
    MEAS:TEMP?       -> the reference probe's reading (uncertainty +-PROBE_UNCERTAINTY_C)
    STAB?            -> 1 once within STABLE_BAND_C of the target for SETTLE_S, else 0
    anything else    -> ERR:<message>

The bath approaches its target with a first-order time constant of TIME_CONSTANT_S of
bath time; a sanctuary's time scale compresses it like the pads' physics. Units placed
in the bath (World) see its temperature at every thermistor.
"""

import os
import random
import select
import threading
import tty

TIME_CONSTANT_S = 90.0
SETTLE_S = 60.0
STABLE_BAND_C = 0.01
PROBE_UNCERTAINTY_C = 0.005  # the reference probe's stated uncertainty (2 sigma)
TARGET_RANGE_C = (5.0, 60.0)


class CalibrationBath:
    def __init__(self, serial="CB0001", start_c=22.0, time_scale=1.0, seed=1):
        self.serial = serial
        self.time_scale = time_scale
        self.target_c = start_c
        self.temperature_c = start_c
        self._stable_for = 0.0
        self._rng = random.Random(f"bath/{seed}")
        self._lock = threading.Lock()
        self._master, slave = os.openpty()
        tty.setraw(slave)
        self._slave = slave  # held open: the port stays up with no user attached
        self.port = os.ttyname(slave)
        os.set_blocking(self._master, False)
        self._pending = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="bath", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self._master)
        os.close(self._slave)

    def step(self, seconds):
        """Advance the bath by `seconds` of wall time."""
        seconds *= self.time_scale
        with self._lock:
            fraction = min(1.0, seconds / TIME_CONSTANT_S)
            self.temperature_c += (self.target_c - self.temperature_c) * fraction
            if abs(self.temperature_c - self.target_c) <= STABLE_BAND_C:
                self._stable_for += seconds
            else:
                self._stable_for = 0.0

    @property
    def stable(self):
        with self._lock:
            return self._stable_for >= SETTLE_S

    def answer(self, line):
        """The bath's answer to one command line, or None for commands that answer nothing."""
        command, _, argument = line.strip().partition(" ")
        command = command.upper()
        if command == "*IDN?":
            return f"SomaSim,CalBath-1,{self.serial},1.0"
        if command == "SOUR:TEMP?":
            return f"{self.target_c:.3f}"
        if command == "MEAS:TEMP?":
            noise = self._rng.gauss(0.0, PROBE_UNCERTAINTY_C / 2)
            return f"{self.temperature_c + noise:.4f}"
        if command == "STAB?":
            return "1" if self.stable else "0"
        if command == "SOUR:TEMP":
            try:
                target = float(argument)
            except ValueError:
                return f"ERR:not a temperature: {argument!r}"
            low, high = TARGET_RANGE_C
            if not low <= target <= high:
                return f"ERR:target outside {low:g}..{high:g} degC"
            with self._lock:
                self.target_c = target
                self._stable_for = 0.0
            return None
        return f"ERR:unknown command {command!r}"

    def _serve(self):
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                self._pending += os.read(self._master, 1024)
            except (BlockingIOError, OSError):
                continue
            *lines, self._pending = self._pending.replace(b"\r", b"\n").split(b"\n")
            for raw in lines:
                if raw.strip():
                    reply = self.answer(raw.decode(errors="replace"))
                    if reply is not None:
                        os.write(self._master, reply.encode() + b"\n")
