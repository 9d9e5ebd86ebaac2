"""A calibration bath on its own pseudo-terminal, speaking a small SCPI-like text protocol
(one command per line, answers end with "\\n"):

    *IDN?             -> SomaSim,CalBath-1,<serial>,1.0
    SOUR:TEMP <degC>  -> set the bath's target (5..60 degC); no answer
    SOUR:TEMP?        -> the target
    MEAS:TEMP?        -> the reference probe's reading (uncertainty +-PROBE_UNCERTAINTY_C)
    STAB?             -> 1 once within STABLE_BAND_C of the target for SETTLE_S, else 0
    VIBR:AMPL <codes> -> the reference shaker's amplitude (0..8000 codes; 0 = off); no answer
    VIBR:AMPL?        -> the shaker's amplitude
    VIBR:FREQ?        -> the shaker's frequency, Hz (fixed: 1.000)
    MEAS:LIGHT?       -> the photodiode: the unit's wake light, permille of full brightness
    MEAS:HAPT?        -> the accelerometer on the unit's haptic motor, permille of full drive
    RADI:SEND <hex>   -> the reference radio broadcasts these bytes (<= 250) once -> OK
    RADI:HEARD?       -> frames the reference radio heard since RADI:CLEAR
    RADI:CLEAR        -> reset that count -> OK
    anything else     -> ERR:<message>

The bath approaches its target with a first-order time constant of TIME_CONSTANT_S of
bath time; a sanctuary's time scale compresses it like the pads' physics. Units placed
in the bath (World) see its temperature at every thermistor.

The bath is also the station's test fixture. A reference shaker under the unit's bed
sensor (BCG piezo film) moves it with a SHAKER_FREQ_HZ sine in real time (the firmware
samples in real time); its amplitude is in nominal ADC codes, what a unit with BCG gain 1
reads. While a unit sits in the station (the bath, or the bench fixture's shield box)
its bed sensor feels only the shaker and the fixture's own small vibration
(FIXTURE_NOISE_CODES rms), no sleeper. A photodiode over the wake light and an
accelerometer on the haptic motor measure what the unit really drives (the world shows
them the outputs of the first unit in the station, see `observe`), within
+-METER_NOISE_PERMILLE; both read 0 while the output is off. A reference radio talks with
the units in the station only, through the world's radio medium (so radio loss and
partitions reach it too).
"""

import math
import os
import random
import select
import threading
import tty
from typing import Self

from soma_protocol.constants import ADC_MIDSCALE

TIME_CONSTANT_S = 90.0
RADIO_PAYLOAD_MAX = 250  # ESP-NOW
SETTLE_S = 60.0
STABLE_BAND_C = 0.01
PROBE_UNCERTAINTY_C = 0.005  # the reference probe's stated uncertainty (2 sigma)
TARGET_RANGE_C = (5.0, 60.0)
SHAKER_FREQ_HZ = 1.0
SHAKER_MAX_CODES = 8000
FIXTURE_NOISE_CODES = 3.0  # rms, at the bed sensor
METER_NOISE_PERMILLE = 3  # photodiode and accelerometer


class CalibrationBath:
    def __init__(
        self, serial: str = "CB0001", start_c: float = 22.0, time_scale: float = 1.0, seed: int | str = 1
    ) -> None:
        self.serial = serial
        self.time_scale = time_scale
        self.target_c = start_c
        self.temperature_c = start_c
        self._stable_for = 0.0
        self.shaker_codes = 0.0
        self.light_permille = 0  # what the fixture's meters face (set by observe)
        self.haptic_permille = 0
        self._rng = random.Random(f"bath/{seed}")
        self._fixture_rng = random.Random(f"fixture/{seed}")
        self.radio_out: list[bytes] = []  # frames the reference radio is to broadcast
        self.radio_heard = 0
        self._lock = threading.Lock()
        self._master, slave = os.openpty()
        tty.setraw(slave)
        self._slave = slave  # held open: the port stays up with no user attached
        self.port = os.ttyname(slave)
        os.set_blocking(self._master, False)
        self._pending = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="bath", daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self._master)
        os.close(self._slave)

    def step(self, seconds: float) -> None:
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
    def stable(self) -> bool:
        with self._lock:
            return self._stable_for >= SETTLE_S

    def bcg_signal(self, real_s: float) -> float:
        """The nominal bed sensor signal (codes) of a unit in the fixture at real time `real_s`."""
        shake = self.shaker_codes * math.sin(2 * math.pi * SHAKER_FREQ_HZ * real_s)
        return ADC_MIDSCALE + shake + self._fixture_rng.gauss(0.0, FIXTURE_NOISE_CODES)

    def take_radio_out(self) -> list[bytes]:
        """Frames RADI:SEND queued for the air (the world broadcasts them)."""
        with self._lock:
            frames, self.radio_out = self.radio_out, []
        return frames

    def hear_radio(self, payload: bytes) -> None:
        with self._lock:
            self.radio_heard += 1

    def observe(self, light_permille: int, haptic_permille: int) -> None:
        """What the unit in the fixture drives now (the world calls this every period)."""
        self.light_permille, self.haptic_permille = light_permille, haptic_permille

    def _meter(self, permille: int) -> int:
        if permille <= 0:
            return 0
        return min(1000, max(0, permille + self._rng.randint(-METER_NOISE_PERMILLE, METER_NOISE_PERMILLE)))

    def answer(self, line: str) -> str | None:
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
        if command == "VIBR:AMPL?":
            return f"{self.shaker_codes:g}"
        if command == "VIBR:FREQ?":
            return f"{SHAKER_FREQ_HZ:.3f}"
        if command == "MEAS:LIGHT?":
            return str(self._meter(self.light_permille))
        if command == "MEAS:HAPT?":
            return str(self._meter(self.haptic_permille))
        if command == "VIBR:AMPL":
            return self._set_shaker(argument)
        if command == "RADI:SEND":
            return self._queue_radio(argument)
        if command == "RADI:HEARD?":
            return str(self.radio_heard)
        if command == "RADI:CLEAR":
            with self._lock:
                self.radio_heard = 0
            return "OK"
        if command == "VIBR:FREQ":
            return f"ERR:the shaker runs at a fixed {SHAKER_FREQ_HZ:.3f} Hz"
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

    def _queue_radio(self, argument: str) -> str:
        try:
            frame = bytes.fromhex(argument)
        except ValueError:
            return "ERR:RADI:SEND needs the frame in hex"
        if not 0 < len(frame) <= RADIO_PAYLOAD_MAX:
            return f"ERR:a frame is 1..{RADIO_PAYLOAD_MAX} bytes"
        with self._lock:
            self.radio_out.append(frame)
        return "OK"

    def _set_shaker(self, argument: str) -> str | None:
        try:
            codes = float(argument)
        except ValueError:
            return f"ERR:not an amplitude: {argument!r}"
        if not 0 <= codes <= SHAKER_MAX_CODES:
            return f"ERR:amplitude outside 0..{SHAKER_MAX_CODES} codes"
        self.shaker_codes = codes
        return None

    def _serve(self) -> None:
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
