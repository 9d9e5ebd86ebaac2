"""The world the virtual beds live in: each bed's pads and sensors (pad_model), its unit's
tolerances, its watchdog, served over the sim board's UDP link at 100 Hz.

A unit placed in the calibration bath (BedWorld.bath) sees the bath's temperature at every
thermistor. A unit in the station (in the bath, or in the bench fixture: BedWorld.fixture)
feels the fixture's shaker at its bed sensor instead of the sleeper and, shielded from
the other beds, talks with the station's reference radio only; the fixture's photodiode
and accelerometer see the wake light and haptic motor of the first unit in the station
(one unit at a time).

Time can be compressed: the pads' physics advance `time_scale` times faster than the
wall clock (the firmware itself always runs in real time).

Every bed has a safety oracle (safety_oracle.py) that the world feeds at every serve from its
own truth: the true pads, the heat the drive really puts in, the relay, the thermistors'
soundness, the firmware's loop life (watchdog feeds in its actuator datagrams) and its boots;
what the host asked and the firmware reported comes from the bed's line tap (line_tap.py).
Times are the host's monotonic clock (the firmware's own time: it always runs in real time).
`oracles_created()` collects the oracles of the beds made inside it (the test suite judges them).
"""

from __future__ import annotations

import collections
import contextlib
import random
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from soma.sim.line_tap import LineTap
from soma.sim.pad_model import PadModel
from soma.sim.radio import RadioMedium
from soma.sim.safety_oracle import SafetyOracle
from soma.sim.virtual_bed import HARD, POWER_ON, WATCHDOG, VirtualBed
from soma_protocol import codec, schema
from soma_protocol.constants import ADC_FULL_SCALE, ADC_MIDSCALE, DRIVE_FULL_POWER_W
from soma_protocol.enums import OutputChannel

if TYPE_CHECKING:
    from soma.sim.bath import CalibrationBath
    from soma.sim.recorder import BcgRecorder
    from soma.sim.sleeper import Sleeper

PERIOD_S = 0.01
TICKS_PERIOD = 1 << 30  # hal_sim's clock wraps as the ESP32's
STATION = -1  # the bath fixture's reference radio, as a node of the radio medium
INTRUDER = -2  # a radio that is not the sanctuary's (World.inject_radio)
_CHANNELS = {channel.name: int(channel) for channel in OutputChannel}
WAKE_LIGHT, HAPTIC = _CHANNELS["wake_light"], _CHANNELS["haptic"]
THERMISTORS = range(3)  # pad left, pad right, ambient: the sensors the oracle judges sound
_collectors: list[list[SafetyOracle]] = []  # oracles_created() blocks, innermost last


@contextlib.contextmanager
def oracles_created() -> Iterator[list[SafetyOracle]]:
    """The safety oracles of the bed worlds created inside the block; a bed world created in a
    nested block counts in that block only."""
    created: list[SafetyOracle] = []
    _collectors.append(created)
    try:
        yield created
    finally:
        _collectors.remove(created)


@dataclass(frozen=True)
class Unit:
    """What makes one unit itself: serial number, clock error, sensor tolerances."""

    serial: str
    drift_ppb: int
    offset_us: int
    r25: tuple[float, ...] = field(default=(10000.0,) * 3)
    beta: tuple[float, ...] = field(default=(3950.0,) * 3)
    adc_gain: float = 1.0
    adc_offset: float = 0.0
    bcg_offset: float = 0.0  # the charge amplifier's zero error, ADC codes
    bcg_gain: float = 1.0  # the piezo film and charge amplifier's sensitivity error

    @classmethod
    def from_seed(cls, seed: object, index: object) -> Unit:
        """Reproducible unit `index` of a sanctuary built from `seed`: R25 +-5 %, B +-2 %,
        ADC gain +-0.5 % and offset +-40 codes, clock +-50 ppm and any offset, BCG channel
        zero +-600 codes and gain +-15 %. New tolerances are drawn last, so a unit keeps
        the values it had before they existed."""
        rng = random.Random(f"{seed}/{index}")
        return cls(
            serial=f"5c0a{rng.getrandbits(32):08x}",
            drift_ppb=rng.randint(-50_000, 50_000),
            offset_us=rng.randrange(1 << 30),
            r25=tuple(10000.0 * rng.uniform(0.95, 1.05) for _ in range(3)),
            beta=tuple(3950.0 * rng.uniform(0.98, 1.02) for _ in range(3)),
            adc_gain=rng.uniform(0.995, 1.005),
            adc_offset=rng.uniform(-40, 40),
            bcg_offset=rng.uniform(-600, 600),
            bcg_gain=rng.uniform(0.85, 1.15),
        )

    def local_ticks(self, real_us: int) -> int:
        """This unit's clock (hal_sim's ticks_us) `real_us` after the sanctuary's epoch."""
        return (self.offset_us + real_us + real_us * self.drift_ppb // 1_000_000_000) % TICKS_PERIOD

    def real_us(self, ticks: int, near_real_us: int) -> int:
        """The inverse: when (us after the epoch) the clock read `ticks`, the reading
        nearest `near_real_us` (the clock wraps every ~18 minutes)."""
        step = (ticks - self.local_ticks(near_real_us) + TICKS_PERIOD // 2) % TICKS_PERIOD - TICKS_PERIOD // 2
        return near_real_us + round(step * 1e9 / (1e9 + self.drift_ppb))

    def bcg_code(self, signal: float) -> int:
        """The ADC code this unit's bed sensor channel gives for a nominal `signal` (codes)."""
        code = ADC_MIDSCALE + self.bcg_offset + self.bcg_gain * (signal - ADC_MIDSCALE)
        return min(ADC_FULL_SCALE, max(0, round(code)))


class BedWorld:
    """The world's end of one bed's link."""

    def __init__(
        self,
        unit: Unit,
        room_c: float = 22.0,
        time_scale: float = 1.0,
        sleeper: Sleeper | None = None,
        epoch_us: int | None = None,
    ) -> None:
        self.unit = unit
        self.epoch_us = epoch_us  # see Unit.local_ticks; None: the unit's clock is not known
        self.time_scale = time_scale
        self.sleeper = sleeper  # a Sleeper, or None: an empty bed that is not quite silent
        self.sleeper_since = time.monotonic()  # when the sleeper's night started
        self.room_c = room_c  # the bedroom's air, whatever the bath did
        self.model = PadModel(room_c=room_c, r25=unit.r25, beta=unit.beta)
        self.model.adc_gain = unit.adc_gain
        self.model.adc_offset = unit.adc_offset
        self.model.enable = False  # the relay is open at power-up; the firmware closes it
        self.outputs: list[int] = [0] * schema.OUTPUT_CHANNELS
        self.watchdog_timeout_ms = 0
        self.watchdog_held = 0
        self.reset_requested = 0
        self.radio_out: list[
            tuple[float, bytes]
        ] = []  # (host time sent, frame) the bed broadcast, not yet on the medium
        self.output_events: collections.deque[tuple[float, int, int]] = collections.deque(
            maxlen=100_000
        )  # (host time, channel, level)
        self.radio_sent = 0
        self.radio_received = 0
        self.bath: CalibrationBath | None = None  # a CalibrationBath when the unit sits in it
        self.fixture: CalibrationBath | None = None  # the bath instrument, when the unit sits in its bench fixture
        self.recorder: BcgRecorder | None = None  # a BcgRecorder while `soma sim record` records this bed
        self.oracle = SafetyOracle(
            unit.serial, schema.TRIP_MAX_MC / 1000, schema.AUTO_OFF_MAX_MIN * 60, schema.FAULT_MASK_ALL_DRIVE
        )
        if _collectors:
            _collectors[-1].append(self.oracle)
        self.tap = LineTap()  # the bed's VirtualBed hands it the line (SimBed)
        self._actuator_seq = 0
        self._feeds: int | None = None
        self._fed_at = time.monotonic()
        self._sensor_seq = 0
        self._bed_address: tuple[str, int] | None = None
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.setblocking(False)
        self.port: int = self.socket.getsockname()[1]

    def serve(self, now: float, seconds: float) -> None:
        """Take the bed's datagrams, advance the pads by `seconds` of wall time, send sensors;
        the oracle sees the result."""
        while True:
            try:
                data, address = self.socket.recvfrom(512)
            except BlockingIOError:
                break
            if address != self._bed_address:  # a process that has not spoken yet: a new boot
                self._booted(now)
                self._bed_address = address
            self._take(data, now)
        self._hear_line()
        if self.bath is not None:  # every thermistor sits at the bath's temperature
            self.model.pad_c[:] = self.model.sensor_c[:] = [self.bath.temperature_c] * 2
            self.model.room_c = self.bath.temperature_c
        else:  # out of the bath: back in the room, the pads cooling or warming towards it
            self.model.room_c = self.room_c
        # A body warms the pads only when someone lies on them (never in the bath).
        in_bed = self.sleeper is not None and self.sleeper.vitals(now - self.sleeper_since).present
        self.model.sleeper = in_bed and self.bath is None
        self.model.step(seconds * self.time_scale, self.outputs)
        signal: float = self.model.codes[5]  # the nominal bed sensor signal, codes
        if self.sleeper is not None:  # the sleeper lives on while the unit is in the bath
            signal = self.sleeper.bcg_code(now - self.sleeper_since)
        if self.station is not None:
            signal = self.station.bcg_signal(now)
        self.model.codes[5] = self.unit.bcg_code(signal)
        if self.recorder is not None:
            vitals = None if self.sleeper is None else self.sleeper.vitals(now - self.sleeper_since)
            if not self.recorder.add(now, self.model.codes[5], vitals):
                self.recorder = None
        self._referee(now)
        if self._bed_address is not None:
            self._sensor_seq = (self._sensor_seq + 1) & 0xFFFFFFFF
            payload = codec.encode("sim_sensors", [self._sensor_seq, *self.model.codes])
            try:
                self.socket.sendto(payload, self._bed_address)
            except OSError:
                pass  # the bed is restarting

    def put_sleeper(self, sleeper: Sleeper | None) -> None:
        """A sleeper (or None) in this bed from now on: their night starts now."""
        self.sleeper_since = time.monotonic()
        self.sleeper = sleeper

    def cut_power_after(self, byte_count: int) -> None:
        """Cut the unit's power once `byte_count` more bytes have gone to its flash."""
        if self._bed_address is None:
            raise RuntimeError("the bed has not started yet")
        self.socket.sendto(codec.encode("sim_control", [byte_count]), self._bed_address)

    def local_ticks(self, at_s: float) -> int:
        """The unit's clock (ticks, wrapping at 2^30 as hal_sim's) at host monotonic time `at_s`."""
        return self.unit.local_ticks(round(at_s * 1e6) - (self.epoch_us or 0))

    def host_time(self, ticks: int, near_s: float) -> float:
        """The host monotonic time (s) at which the unit's clock read `ticks`, near `near_s`."""
        if self.epoch_us is None:
            return near_s
        return (self.epoch_us + self.unit.real_us(ticks, round(near_s * 1e6) - self.epoch_us)) / 1e6

    def deliver_radio(self, payload: bytes, arrived_s: float) -> None:
        if self._bed_address is not None:
            self.radio_received += 1
            try:
                datagram = codec.encode("sim_radio", [self.local_ticks(arrived_s), payload])
                self.socket.sendto(datagram, self._bed_address)
            except OSError:
                pass  # the bed is restarting: the frame is lost, as on air

    def _booted(self, now: float) -> None:
        self.oracle.boot(now)
        self._actuator_seq = 0

    def _hear_line(self) -> None:
        """What the line tap heard since the last serve (but the programs: World spreads them)."""
        tap = self.tap
        while tap.intents:
            self.oracle.intent(tap.intents.popleft())
        while tap.reports:
            self.oracle.reported(*tap.reports.popleft())

    def _referee(self, now: float) -> None:
        model = self.model
        heat_w = (model.power_w(0, self.outputs[0]), model.power_w(1, self.outputs[1]))
        broken = model.faults.get("open", set()) | model.faults.get("short", set())
        sound = [sensor not in broken for sensor in THERMISTORS]
        self.oracle.observe(now, model.pad_c, heat_w, model.enable, sound)

    def _take(self, data: bytes, now: float) -> None:
        try:
            if data[:1] == bytes([schema.SIM_KIND_ACTUATORS]):
                values = codec.decode("sim_actuators", data)
                if values[0] < self._actuator_seq:  # counting from the start again: a new process
                    self._booted(now)
                self._actuator_seq = values[0]
                if values[1:6] != self.outputs:
                    at = self.host_time(values[9], now)
                    for channel, (old, new) in enumerate(zip(self.outputs, values[1:6], strict=True)):
                        if old != new:
                            self.output_events.append((at, channel, new))
                self.outputs = values[1:6]
                timeout_ms, feeds, held = values[6:9]
                if feeds != self._feeds:
                    self.oracle.loop_ran(now)
                if feeds != self._feeds or timeout_ms != self.watchdog_timeout_ms:
                    self._fed_at = now
                self._feeds, self.watchdog_timeout_ms, self.watchdog_held = feeds, timeout_ms, held
                self.reset_requested = values[10]  # 1: reset line, 2: power cut
                self.model.enable = bool(values[11])
            elif data[:1] == bytes([schema.SIM_KIND_RADIO]):
                ticks, payload = codec.decode("sim_radio", data)
                self.radio_out.append((self.host_time(ticks, now), cast(bytes, payload)))
                self.radio_sent += 1
        except codec.ProtocolError:
            pass  # not a sim datagram: ignored, as a board ignores noise on its pins

    @property
    def station(self) -> CalibrationBath | None:
        """The station instrument this unit sits in (its bath or its bench fixture), or None."""
        return self.bath or self.fixture

    def watchdog_expired(self, now: float) -> bool:
        return (
            self.watchdog_timeout_ms > 0
            and not self.watchdog_held
            and now - self._fed_at > self.watchdog_timeout_ms / 1000
        )

    def rebooted(self, now: float) -> None:
        """The bed restarted: its watchdog is disarmed until the firmware arms it again; what
        the ended process sent before it ended is not the new boot's (its first datagram is)."""
        while True:
            try:
                self.socket.recvfrom(512)
            except BlockingIOError:
                break
        self.watchdog_timeout_ms = 0
        self.watchdog_held = 0
        self.reset_requested = 0
        self._feeds = None
        self._fed_at = now
        self.outputs = [0] * schema.OUTPUT_CHANNELS
        self.model.enable = False
        self._bed_address = None

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.abandon()
        self.socket.close()


class World:
    """Serves every bed's link from one thread at 100 Hz, carries their radio frames through
    the medium, runs the calibration bath, enforces the beds' watchdogs and feeds their
    safety oracles."""

    def __init__(self, radio: RadioMedium | None = None, bath: CalibrationBath | None = None) -> None:
        self.beds: list[tuple[BedWorld, VirtualBed]] = []
        self.radio = radio or RadioMedium()
        self.bath = bath
        self.drive_w: collections.deque[tuple[float, float]] = collections.deque(
            maxlen=200_000
        )  # (host time, electrical W of every pad)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="world", daemon=True)
        self._lock = threading.Lock()
        self._intruder_frames: collections.deque[bytes] = (
            collections.deque()
        )  # frames an intruder puts on air (inject_radio)

    def add(self, bed_world: BedWorld, virtual_bed: VirtualBed) -> None:
        with self._lock:
            self.beds.append((bed_world, virtual_bed))

    def start(self) -> None:
        self._thread.start()

    def inject_radio(self, payload: bytes) -> None:
        """Put a frame on air from outside the sanctuary (an intruder): every bed may hear it."""
        self._intruder_frames.append(payload)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for bed_world, _ in self.beds:
            bed_world.close()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                beds = list(self.beds)
            if self.bath is not None:
                self.bath.step(now - last)
            indexes = range(len(beds))
            in_station = self._in_station(beds)
            # The station is a shield box: a unit inside talks with its reference radio only.
            outside = [i for i in indexes if i not in in_station] if in_station else indexes
            for index, (bed_world, virtual_bed) in enumerate(beds):
                bed_world.serve(now, now - last)
                while bed_world.tap.programs:  # a program spreads by radio: every bed may run it
                    start, end = bed_world.tap.programs.popleft()
                    for other, _ in beds:
                        other.oracle.program(start, end)
                receivers = [STATION] if index in in_station else outside
                for sent, payload in bed_world.radio_out:
                    self.radio.transmit(index, payload, receivers, sent)
                bed_world.radio_out.clear()
                cause = (
                    WATCHDOG
                    if bed_world.watchdog_expired(now)
                    else {1: HARD, 2: POWER_ON}.get(bed_world.reset_requested)
                )
                if cause is not None:
                    virtual_bed.reset(cause)
                    bed_world.rebooted(now)
            while self._intruder_frames:
                self.radio.transmit(INTRUDER, self._intruder_frames.popleft(), outside, now)
            if self.bath is not None:
                for payload in self.bath.take_radio_out():
                    self.radio.transmit(STATION, payload, in_station, now)
            for receiver, payload, arrived in self.radio.due(now):
                if receiver == STATION:
                    if self.bath is not None:  # only a bath's reference radio is the STATION
                        self.bath.hear_radio(payload)
                else:
                    beds[receiver][0].deliver_radio(payload, arrived)
            if self.bath is not None:
                self._show_fixture(beds, in_station)
            pads = sum(abs(bed_world.outputs[0]) + abs(bed_world.outputs[1]) for bed_world, _ in beds)
            self.drive_w.append((now, pads * DRIVE_FULL_POWER_W / 1000))
            last = now
            self._stop.wait(max(0.0, PERIOD_S - (time.monotonic() - now)))

    def _in_station(self, beds: Sequence[tuple[BedWorld, VirtualBed]]) -> list[int]:
        """Indexes of the beds whose unit sits in the station (the bath and its shield box)."""
        if self.bath is None:
            return []
        return [index for index, (bed_world, _) in enumerate(beds) if bed_world.station is self.bath]

    def _show_fixture(self, beds: Sequence[tuple[BedWorld, VirtualBed]], in_station: Sequence[int]) -> None:
        """The station fixture's photodiode and accelerometer watch the first unit in the station."""
        if self.bath is None:  # no station
            return
        outputs = beds[in_station[0]][0].outputs if in_station else [0] * schema.OUTPUT_CHANNELS
        self.bath.observe(light_permille=outputs[WAKE_LIGHT], haptic_permille=outputs[HAPTIC])
