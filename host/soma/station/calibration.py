"""Multi-point thermistor calibration in a calibration bath.

At each set point the bath must report itself stable; then the reference probe and the
unit's raw ADC codes are averaged over a few readings. The codes become resistances
through the SB-1 divider, and a Steinhart-Hart curve (1/T = a + b ln R + c ln^3 R) is fitted
per sensor by least squares. A fit whose residual exceeds the limit is refused; otherwise
it is written to the unit, committed, read back, and every point is measured again with
the calibrated firmware, so the report shows the error before and after.

First, the bed sensor (BCG) channel gets a zero and a gain from the station's fixture: with its
reference shaker off, the mean raw code over a few seconds gives the zero; with the shaker
at a reference amplitude, a least-squares fit of a sine at the shaker's frequency (phase
unknown) gives the amplitude the unit reads, and reference / measured is the gain. A zero
or gain outside the limits means a broken channel: refused before the bath's sweep, nothing
committed. After the commit the amplitude is measured again and corrected with the stored gain.

The shake is also how a unit not in the bath is told: the shaker's sine must stand out of
what the bed sensor reads. A unit that does not see it is either out of the bath or has a
dead BCG channel; the pads tell which as soon as the bath has moved a degree on its way to
the first point (in the bath they follow it), so a unit left out costs seconds, not the sweep.

`calibrate` tells its progress, if asked, as CalibrationProgress events (see there).
"""

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from soma.errors import SomaError, failure
from soma.link.management import ALL_FAULTS, DeviceError, ManagementClient, fault_names
from soma.station.commit import committing
from soma_protocol import codec, schema
from soma_protocol.constants import ADC_FULL_SCALE, ADC_MIDSCALE, NTC_PULLUP_OHM

SET_POINTS_C = (15.0, 22.0, 29.0, 36.0, 42.0)
SENSORS = ("pad_left", "pad_right", "ambient")
RESIDUAL_LIMIT_C = 0.05
READINGS = 6  # averaged per point
KELVIN = 273.15

BCG_CHANNEL = 5  # index of the bed sensor's raw code in read_sensors
BCG_REFERENCE_CODES = 4000  # shaker amplitude, nominal codes
BCG_ZERO_S = 3.0
BCG_AMPLITUDE_S = 4.0
BCG_ZERO_LIMIT = 4000  # codes either side of mid scale
BCG_GAIN_RANGE = (0.5, 2.0)
SHAKER_SETTLE_S = 0.5
Q16 = 1 << 16
BATH_IDLE_C = 22.0  # room temperature, where a bath starts: safe to reach into, whatever stopped the run
# The shake is seen when its sine stands this far above the rest of what the bed sensor reads
# (in the bath: the fixture's few codes of noise; on a bench or a bed: hum, breathing, heartbeats)
# and above a floor no channel within the gain limits comes near.
SHAKER_SEEN_SNR = 10.0
SHAKER_SEEN_MIN_CODES = 40.0
FOLLOW_BATH_C = 1.0  # how far the bath must move before the pads' following it tells anything
FOLLOW_FRACTION = 0.3  # of the bath's move, at least, that a pad in it follows (it lags a little)
STABLE_POLL_S = 0.1
PROGRESS_EVERY_S = 1.0  # bath and unit readings while settling, for the progress and the pads' check
IDN_TIMEOUT_S = 1.0
RESYNC_TRIES = 3
QUIET_S = 0.2  # a line this long silent is drained
DRAIN_MAX_S = 3.0
READING_S = READINGS * 0.13  # a point's readings, about (the unit reads at 10 Hz)
SHAKE_S = SHAKER_SETTLE_S + BCG_AMPLITUDE_S + 0.5  # a reference shake, the shaker's set-up included

Coefficients = tuple[float, float, float]  # Steinhart-Hart (a, b, c)
# One set point as `measure` gives it: (reference degC, averaged raw code per sensor, averaged unit degC per sensor)
PointSample = tuple[float, list[float], list[float]]


class BathLine(Protocol):
    """The bath's line: a SerialLink, or anything that reads and writes bytes alike."""

    port: str

    def read(self, timeout: float) -> bytes: ...

    def write(self, data: bytes) -> object: ...


class BathApi(Protocol):
    """What calibration asks of a bath: a Bath, or a SharedBath over one."""

    def set_target(self, temp_c: float) -> None: ...

    def stable(self) -> bool: ...

    def reference_c(self) -> float: ...

    def set_shaker(self, codes: float) -> None: ...

    def shaker_hz(self) -> float: ...

    def idle(self) -> None: ...

    @property
    def identity(self) -> str: ...


class Bath:
    """The calibration bath's SCPI-like line (any object with read(timeout) and write(bytes)).

    Before its first command the line is resynchronised: a run that had the ports swapped
    wrote the unit's frames to the bath, and what the bath has not taken as a line yet
    would prefix the next command (`ERR:unknown command '~}!}!}!}'`). A line terminator
    ends it, what the bath answers to that is drained, then `*IDN?` is asked until it is
    answered cleanly."""

    def __init__(self, link: BathLine) -> None:
        self._link = link
        self._identity = ""  # the bath's *IDN? answer, once the line is in step
        self._silent: SomaError | None = None  # why it could not be brought in step

    @property
    def identity(self) -> str:
        """The bath's *IDN? answer (maker, model, serial, version)."""
        self._in_step()
        return self._identity

    def ask(self, command: str, timeout: float = 3.0) -> str:
        self._in_step()
        text = self._exchange(command, timeout)
        if not text:
            raise failure("bath_no_answer", port=self._link.port, command=command, seconds=timeout)
        if text.startswith("ERR"):
            raise failure("bath_refused", port=self._link.port, command=command, answer=text)
        return text

    def set_target(self, temp_c: float) -> None:
        self._send(f"SOUR:TEMP {temp_c:.3f}")

    def stable(self) -> bool:
        return self.ask("STAB?") == "1"

    def reference_c(self) -> float:
        return float(self.ask("MEAS:TEMP?"))

    def set_shaker(self, codes: float) -> None:
        """Set the reference shaker's amplitude (0: off) and confirm the bath took it."""
        self._send(f"VIBR:AMPL {codes:g}")
        answer = self.ask("VIBR:AMPL?")
        if float(answer) != codes:
            raise SomaError(f"the calibration bath's shaker is at {answer} codes, not {codes:g}")

    def shaker_hz(self) -> float:
        return float(self.ask("VIBR:FREQ?"))

    def idle(self) -> None:
        """Back to BATH_IDLE_C, shaker off (not waited for)."""
        self._send(f"SOUR:TEMP {BATH_IDLE_C:.3f}\nVIBR:AMPL 0")

    def _send(self, lines: str) -> None:
        """Commands that answer nothing."""
        self._in_step()
        self._link.write(lines.encode() + b"\n")

    def _exchange(self, command: str, timeout: float) -> str:
        """`command`'s answer line, stripped ("" if none came within `timeout`)."""
        self._link.write(command.encode() + b"\n")
        reply = b""
        deadline = time.monotonic() + timeout
        while not reply.endswith(b"\n") and time.monotonic() < deadline:
            reply += self._link.read(0.05)
        return reply.decode(errors="replace").strip()

    def _in_step(self) -> None:
        if self._identity:
            return
        if self._silent is not None:
            raise self._silent  # asked once already: not again at every command (the idle after a failure)
        for _ in range(RESYNC_TRIES):
            self._link.write(b"\n")  # ends whatever half line the bath holds
            self._drain()
            answer = self._exchange("*IDN?", IDN_TIMEOUT_S)
            if answer and not answer.startswith("ERR") and "\n" not in answer:
                self._identity = answer
                return
        self._silent = failure("bath_no_answer", port=self._link.port, command="*IDN?", seconds=IDN_TIMEOUT_S)
        raise self._silent

    def _drain(self) -> None:
        """Read until the line is quiet (answers to the stale bytes), for DRAIN_MAX_S at most."""
        deadline = time.monotonic() + DRAIN_MAX_S
        while self._link.read(QUIET_S) and time.monotonic() < deadline:
            pass


class SharedBath:
    """One bath calibrating several units at once, each in its own thread running
    `calibrate`: every thread makes the same bath calls in the same order, so a call that
    changes the bath (a set point, the shaker) waits until every unit still calibrating has
    made it (all have finished measuring at the previous setting), then runs once. Queries
    go straight through, one at a time. A unit that fails leaves, and the others go on."""

    def __init__(self, bath: BathApi, units: int) -> None:
        self._bath = bath
        self._line = threading.Lock()  # one command and answer at a time on the bath's line
        self._turn = threading.Condition()
        self._units = units  # still calibrating
        self._arrived = 0
        self._round = 0
        self._pending: Callable[[], None] | None = None  # the change the units are gathering for
        self._failure: SomaError | None = None  # the SomaError it raised, for every unit

    def leave(self) -> None:
        """A unit is done (or failed): the others no longer wait for it. The last one to
        leave puts the bath back to idle."""
        with self._turn:
            self._units -= 1
            self._release_if_complete()
            if not self._units:
                with self._line:
                    _idle(self._bath)

    def idle(self) -> None:
        """Nothing: the bath goes idle when the last unit leaves."""

    def set_target(self, temp_c: float) -> None:
        self._together(lambda: self._bath.set_target(temp_c))

    def stable(self) -> bool:
        with self._line:
            return self._bath.stable()

    def set_shaker(self, codes: float) -> None:
        self._together(lambda: self._bath.set_shaker(codes))

    def reference_c(self) -> float:
        with self._line:
            return self._bath.reference_c()

    def shaker_hz(self) -> float:
        with self._line:
            return self._bath.shaker_hz()

    @property
    def identity(self) -> str:
        with self._line:
            return self._bath.identity

    def _together(self, change: Callable[[], None]) -> None:
        with self._turn:
            self._arrived += 1
            this_round = self._round
            self._pending = change
            self._release_if_complete()
            while self._round == this_round:
                self._turn.wait()
            if self._failure is not None:
                raise self._failure

    def _release_if_complete(self) -> None:
        if self._arrived and self._arrived >= self._units:
            self._failure = None
            change = self._pending
            assert change is not None  # every unit that arrived left its change
            try:
                with self._line:
                    change()
            except SomaError as exc:
                self._failure = exc
            self._arrived = 0
            self._round += 1
            self._turn.notify_all()


def calibrate_units(
    clients: Sequence[ManagementClient],
    bath: BathApi,
    set_points: Sequence[float] = SET_POINTS_C,
    residual_limit_c: float = RESIDUAL_LIMIT_C,
    settle_timeout: float = 600,
    station: str = "",
    *,
    progress: "Callable[[CalibrationProgress], None] | None" = None,
) -> "list[CalibrationReport | SomaError]":
    """Calibrate every unit behind `clients` in one bath at once; a CalibrationReport or
    the SomaError that stopped it, per unit, in order. `progress` gets every unit's events
    (told apart by their serial), from each unit's own thread."""
    shared = SharedBath(bath, len(clients))

    def one(client: ManagementClient) -> "CalibrationReport | SomaError":
        try:
            return calibrate(client, shared, set_points, residual_limit_c, settle_timeout, station, progress=progress)
        except SomaError as exc:
            return exc
        finally:
            shared.leave()

    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        return list(pool.map(one, clients))


def resistance_ohm(code: float) -> float:
    code = min(max(code, 1.0), ADC_FULL_SCALE - 1.0)
    return NTC_PULLUP_OHM * code / (ADC_FULL_SCALE - code)


def fit_steinhart_hart(points: Iterable[tuple[float, float]]) -> Coefficients:
    """(a, b, c) by least squares from (resistance_ohm, temp_c) pairs; at least three."""
    rows: list[tuple[tuple[float, float, float], float]] = []
    for resistance, temp_c in points:
        ln_r = math.log(resistance)
        rows.append(((1.0, ln_r, ln_r**3), 1.0 / (temp_c + KELVIN)))
    a, b, c = _least_squares(rows)
    return a, b, c


def fit_sine(samples: Iterable[tuple[float, float]], freq_hz: float) -> tuple[float, float]:
    """(amplitude, mean) of y = s sin(wt) + c cos(wt) + mean fitted to (t, y) samples."""
    s, c, mean = _sine_terms(samples, freq_hz)
    return math.hypot(s, c), mean


def _sine_terms(samples: Iterable[tuple[float, float]], freq_hz: float) -> list[float]:
    """(s, c, mean) of fit_sine's y = s sin(wt) + c cos(wt) + mean."""
    omega = 2 * math.pi * freq_hz
    return _least_squares([((math.sin(omega * t), math.cos(omega * t), 1.0), y) for t, y in samples])


def curve_c(coefficients: Coefficients, resistance: float) -> float:
    a, b, c = coefficients
    ln_r = math.log(resistance)
    return 1.0 / (a + b * ln_r + c * ln_r**3) - KELVIN


def _least_squares(rows: Sequence[tuple[Sequence[float], float]]) -> list[float]:
    """Coefficients minimising the squared error over (x tuple, y) rows (normal equations)."""
    n = len(rows[0][0])
    normal = [[sum(x[i] * x[j] for x, _ in rows) for j in range(n)] for i in range(n)]
    rhs = [sum(x[i] * y for x, y in rows) for i in range(n)]
    return _solve(normal, rhs)


def _solve(matrix: Sequence[Sequence[float]], rhs: Sequence[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (3 unknowns)."""
    n = len(rhs)
    rows = [list(matrix[i]) + [rhs[i]] for i in range(n)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(rows[r][col]))
        rows[col], rows[pivot] = rows[pivot], rows[col]
        if abs(rows[col][col]) < 1e-300:
            raise SomaError("calibration points do not determine a fit (too few distinct points)")
        for r in range(n):
            if r != col:
                factor = rows[r][col] / rows[col][col]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[col], strict=True)]
    return [rows[i][n] / rows[i][i] for i in range(n)]


@dataclass
class CalibrationReport:
    serial: str
    firmware_hash: str
    bath: str = ""  # the bath's *IDN? answer: which bath (its serial) the unit was calibrated in
    coefficients: dict[str, Coefficients] = field(default_factory=dict)  # sensor -> (a, b, c)
    residual_c: dict[str, float] = field(default_factory=dict)  # sensor -> worst fit residual
    before_c: list[dict[str, float]] = field(default_factory=list)  # per point: {sensor: unit - reference}
    after_c: list[dict[str, float]] = field(default_factory=list)
    generation: int = 0
    bcg_zero: int = 0  # codes: the BCG channel's rest code minus mid scale
    bcg_gain: float = 1.0  # the committed gain (Q16 in the record)
    bcg_error_after_pct: float = 0.0  # the corrected shaker amplitude's error after the commit
    faults_cleared: list[str] = field(default_factory=list)  # latched during calibration (the hot point), cleared
    faults_latched: list[str] = field(default_factory=list)  # still latched at the end

    @property
    def max_error_after_c(self) -> float:
        return max(abs(error) for point in self.after_c for error in point.values())


PHASES = ("shaker", "settling", "reading", "fit", "commit", "done")


@dataclass(frozen=True)
class CalibrationProgress:
    """One step of a calibration, for whoever watches it (`calibrate(..., progress=f)`
    calls f(event) at each).

    phase: "shaker" (the BCG channel against the reference shake: before the sweep, also
    whether the unit is in the bath; after the commit, the corrected amplitude), "settling"
    (the bath on its way to a point: told every PROGRESS_EVERY_S and once stable),
    "reading" (the point's readings), "fit" (the curves fitted), "commit", "done".
    sweep: "calibrate" up to the commit, "verify" after it (every point measured again,
    hottest first)."""

    serial: str
    phase: str
    sweep: str
    point: int  # the set point's number in this sweep, 1..points; 0 outside the points
    points: int
    target_c: float | None  # the bath's set point
    elapsed_s: float  # in this phase so far
    expected_s: float | None  # this phase's length (settling: as the points before took; None before any)
    seconds_left: float | None  # the whole calibration, estimated; None until a point has settled
    bath_c: float | None = None  # settling: the bath's reference probe
    unit_c: tuple[float, float, float] | None = None  # settling: pad_left, pad_right, ambient as the unit reads
    residual_c: float | None = None  # fit: the worst sensor's fit residual


class Timeline:
    """Where a calibration is, and how long it has left (the points settled so far stand for
    those to come); each step told to `progress`, if given."""

    def __init__(self, serial: str, points: int, progress: Callable[[CalibrationProgress], None] | None) -> None:
        self.serial, self.points, self._progress = serial, points, progress
        self.sweep = "calibrate"
        self.point = 0
        self.target_c: float | None = None
        self._settles: list[float] = []
        self._readings: list[float] = []

    def at(self, point: int, target_c: float) -> "Timeline":
        self.point, self.target_c = point, target_c
        return self

    def verify(self) -> None:
        """The commit is done: the sweep that measures every point again begins."""
        self.sweep, self.point, self.target_c = "verify", 0, None

    def settled(self, seconds: float) -> None:
        self._settles.append(seconds)

    def read(self, seconds: float) -> None:
        self._readings.append(seconds)

    def tell(
        self,
        phase: str,
        elapsed_s: float = 0.0,
        bath_c: float | None = None,
        unit_c: tuple[float, float, float] | None = None,
        residual_c: float | None = None,
    ) -> None:
        if self._progress is None:
            return
        at_point = phase in ("settling", "reading")
        self._progress(
            CalibrationProgress(
                self.serial,
                phase,
                self.sweep,
                self.point if at_point else 0,
                self.points,
                self.target_c if at_point else None,
                round(elapsed_s, 3),
                self._expected(phase),
                self._left(phase, elapsed_s),
                bath_c,
                unit_c,
                residual_c,
            )
        )

    def _expected(self, phase: str) -> float | None:
        if phase == "settling":
            return _mean(self._settles)
        if phase == "reading":
            return _mean(self._readings) or READING_S
        if phase == "shaker":
            return SHAKE_S + (BCG_ZERO_S if self.sweep == "calibrate" else 0.0)
        return None

    def _left(self, phase: str, elapsed_s: float) -> float | None:
        settle_s = _mean(self._settles)
        if phase == "done":
            return 0.0
        if settle_s is None:
            return None
        reading_s = _mean(self._readings) or READING_S
        points_after = self.points - self.point + (self.points if self.sweep == "calibrate" else 0)
        if phase == "settling":
            now = max(0.0, settle_s - elapsed_s) + reading_s
        elif phase == "reading":
            now = reading_s
        elif phase == "shaker":
            now = max(0.0, (self._expected(phase) or 0.0) - elapsed_s)
        else:
            now = 0.0
        shake_to_come = SHAKE_S if self.sweep == "calibrate" else 0.0
        return round(now + points_after * (settle_s + reading_s) + shake_to_come, 1)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


class PresenceWatch:
    """A unit whose bed sensor does not see the shaker: out of the bath, or a dead BCG
    channel in it. Once the bath has moved FOLLOW_BATH_C from where it was, the pads tell
    which (in the bath they follow it): `observe` raises the verdict."""

    def __init__(self, serial: str, bath_c: float, unit_c: tuple[float, float, float]) -> None:
        self._serial, self._bath_c, self._pads_c = serial, bath_c, unit_c[:2]

    def observe(self, bath_c: float, unit_c: tuple[float, float, float]) -> None:
        moved = bath_c - self._bath_c
        if abs(moved) < FOLLOW_BATH_C:
            return
        if any((now - then) / moved >= FOLLOW_FRACTION for now, then in zip(unit_c[:2], self._pads_c, strict=True)):
            raise SomaError(
                "BCG channel: the shaker's reference is not seen on the bed sensor, though the pads follow the "
                "bath: a broken channel, not committed"
            )
        raise failure("not_in_bath", serial=self._serial)

    def undecided(self) -> SomaError:
        """The sweep ended with the bath never FOLLOW_BATH_C from where it was."""
        return SomaError(
            f"BCG channel: the shaker's reference is not seen on the bed sensor, and the bath never moved "
            f"{FOLLOW_BATH_C:g} degC to tell whether the unit is in it (give points further apart): not committed"
        )


def measure(
    client: ManagementClient,
    bath: BathApi,
    set_points: Sequence[float],
    settle_timeout: float,
    timeline: Timeline,
    watch: PresenceWatch | None = None,
) -> list[PointSample]:
    """Per set point: (reference degC, averaged raw codes, averaged unit degC) of each
    sensor, the bath settled there first. `timeline` tells the progress; `watch`, if
    given, sees every bath and unit reading while the bath settles."""
    samples: list[PointSample] = []
    for point, temp_c in enumerate(set_points, 1):
        settle(client, bath, temp_c, settle_timeout, timeline.at(point, temp_c), watch)
        began = time.monotonic()
        timeline.tell("reading")
        references: list[float] = []
        codes: list[list[int]] = [[], [], []]
        temps: list[list[float]] = [[], [], []]
        for _ in range(READINGS):
            references.append(bath.reference_c())
            reading = client.request("read_sensors", timeout=3)
            for sensor in range(3):
                codes[sensor].append(reading[sensor])
                temps[sensor].append(reading[6 + sensor] / 1000.0)
            time.sleep(0.11)  # a fresh 10 Hz reading each time
        timeline.read(time.monotonic() - began)
        samples.append(
            (sum(references) / READINGS, [sum(c) / READINGS for c in codes], [sum(t) / READINGS for t in temps])
        )
    return samples


def unit_c(client: ManagementClient) -> tuple[float, float, float]:
    """What the unit reads now at pad_left, pad_right and ambient, degC."""
    reading = client.request("read_sensors", timeout=3)
    return reading[6] / 1000.0, reading[7] / 1000.0, reading[8] / 1000.0


def settle(
    client: ManagementClient,
    bath: BathApi,
    temp_c: float,
    timeout: float,
    timeline: Timeline,
    watch: PresenceWatch | None = None,
) -> None:
    """Set the bath to `temp_c` and wait until it reports itself stable, telling the bath's
    and the unit's readings every PROGRESS_EVERY_S (and once stable)."""
    bath.set_target(temp_c)
    began = time.monotonic()
    shown = -math.inf
    while True:
        stable = bath.stable()
        now = time.monotonic()
        if stable or now - shown >= PROGRESS_EVERY_S:
            shown = now
            readings = bath.reference_c(), unit_c(client)
            if watch is not None:
                watch.observe(*readings)
            timeline.tell("settling", now - began, *readings)
        if stable:
            timeline.settled(now - began)
            return
        if now - began > timeout:
            raise SomaError(f"the bath did not settle at {temp_c} degC within {timeout:g} s")
        time.sleep(STABLE_POLL_S)


def fit_thermistors(
    samples: Sequence[PointSample], residual_limit_c: float, report: "CalibrationReport"
) -> list[float]:
    """The record's thermistor fields (a, b, c, residual in mK per sensor) from `measure`'s
    samples, noted in `report`; a fit over the residual limit is refused."""
    values: list[float] = []
    for i, name in enumerate(SENSORS):
        points = [(resistance_ohm(codes[i]), reference) for reference, codes, _ in samples]
        coefficients = fit_steinhart_hart(points)
        residual = max(abs(curve_c(coefficients, r) - t) for r, t in points)
        if residual > residual_limit_c:
            raise SomaError(
                f"{name}: fit residual {residual:.3f} degC over the {residual_limit_c} degC limit: not committed"
            )
        report.coefficients[name] = coefficients
        report.residual_c[name] = round(residual, 4)
        values += [*coefficients, min(65535, round(residual * 1000))]  # residual in mK
    return values


def sample_bcg(client: ManagementClient, seconds: float) -> list[tuple[float, int]]:
    """(time.monotonic(), raw BCG code) pairs for `seconds`, as fast as read_sensors answers;
    each stamped midway between request and answer."""
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + seconds
    while (asked := time.monotonic()) < deadline:
        code = client.request("read_sensors", timeout=3)[BCG_CHANNEL]
        samples.append(((asked + time.monotonic()) / 2, code))
    return samples


@contextmanager
def shaking(bath: BathApi, codes: float) -> Iterator[None]:
    """The reference shaker at `codes` inside the block, off after it (also on error)."""
    bath.set_shaker(codes)
    try:
        time.sleep(SHAKER_SETTLE_S)  # let it reach its amplitude
        yield
    finally:
        bath.set_shaker(0)


def bcg_zero(client: ManagementClient) -> int:
    """The BCG channel's mean code at rest (the shaker off) minus mid scale; refused past the limit."""
    codes = [code for _, code in sample_bcg(client, BCG_ZERO_S)]
    zero = round(sum(codes) / len(codes)) - ADC_MIDSCALE
    if abs(zero) > BCG_ZERO_LIMIT:
        raise SomaError(f"BCG channel: zero {zero:+d} codes beyond +-{BCG_ZERO_LIMIT}: a broken channel, not committed")
    return zero


@dataclass(frozen=True)
class Shake:
    """What the BCG channel read of a reference shake: the fitted sine's amplitude, and the
    rms of everything else it read (codes)."""

    amplitude: float
    rest_rms: float

    @property
    def seen(self) -> bool:
        return self.amplitude >= max(SHAKER_SEEN_MIN_CODES, SHAKER_SEEN_SNR * self.rest_rms)


def shake(client: ManagementClient, bath: BathApi, reference: float = BCG_REFERENCE_CODES) -> Shake:
    """The BCG channel's reading of the shaker at `reference` (it is off again after)."""
    freq_hz = bath.shaker_hz()
    with shaking(bath, reference):
        samples = sample_bcg(client, BCG_AMPLITUDE_S)
    s, c, mean = _sine_terms(samples, freq_hz)
    omega = 2 * math.pi * freq_hz
    rest = [y - s * math.sin(omega * t) - c * math.cos(omega * t) - mean for t, y in samples]
    return Shake(math.hypot(s, c), math.sqrt(sum(r * r for r in rest) / len(rest)))


def bcg_gain(amplitude: float, reference: float = BCG_REFERENCE_CODES) -> float:
    """reference / amplitude; refused outside BCG_GAIN_RANGE (a dead or broken channel)."""
    gain = reference / amplitude if amplitude > 0 else math.inf
    low, high = BCG_GAIN_RANGE
    if not low <= gain <= high:
        raise SomaError(
            f"BCG channel: gain {gain:.3f} outside {low}..{high} ({amplitude:.0f} codes read for a "
            f"{reference}-code shake): a broken channel, not committed"
        )
    return gain


# Any: the record's fields as the codec (construct, untyped) nests them.
def commit_record(client: ManagementClient, values: Sequence[float | bytes]) -> tuple[int, dict[str, Any]]:
    """Write, commit and read back the calibration record; its generation and stored fields."""
    with committing(client, "calibration", "soma calibrate"):
        return _commit_record(client, values)


def _commit_record(client: ManagementClient, values: Sequence[float | bytes]) -> tuple[int, dict[str, Any]]:
    try:
        client.request("calibration_write", values, timeout=5)
    except DeviceError as exc:
        if exc.code != "refused":
            raise
        # The firmware takes no curve that strays this far from the nominal NTC: it could blind the trip.
        raise SomaError(
            f"{SENSORS[exc.detail - 1] if 0 < exc.detail <= len(SENSORS) else 'a sensor'}: the fitted curve is more "
            f"than {schema.CALIBRATION_DEVIATION_MAX_MK / 1000:g} degC from the nominal thermistor between "
            f"{schema.CALIBRATION_CHECK_LOW_MC // 1000} and {schema.CALIBRATION_CHECK_HIGH_MC // 1000} degC, and "
            "the unit refused it (a wrong or miswired thermistor, or a bath out of its own calibration): not committed"
        ) from None
    generation = client.request("calibration_commit", timeout=10)[0]
    stored = codec.nest("calibration_read_response", client.request("calibration_read", timeout=5))
    written = codec.nest("calibration_data", values)
    exact = ("bcg_zero", "bcg_gain_q16", "calibrated_at", "station")  # the coefficients come back as float32
    if (stored["state"], stored["generation"]) != (1, generation) or any(
        stored["data"][name] != written[name] for name in exact
    ):
        raise SomaError("the calibration record read back does not match what was written")
    return generation, stored["data"]


def calibrate(
    client: ManagementClient,
    bath: BathApi,
    set_points: Sequence[float] = SET_POINTS_C,
    residual_limit_c: float = RESIDUAL_LIMIT_C,
    settle_timeout: float = 600,
    station: str = "",
    *,
    progress: Callable[[CalibrationProgress], None] | None = None,
) -> CalibrationReport:
    """Calibrate the unit behind `client` (a ManagementClient) in `bath`; return the report.
    `progress`, if given, is called with a CalibrationProgress at every step. The bath is
    left idle (BATH_IDLE_C, shaker off) however the calibration ends."""
    try:
        return _calibrate(client, bath, set_points, residual_limit_c, settle_timeout, station, progress)
    finally:
        _idle(bath)


def _idle(bath: BathApi) -> None:
    try:
        bath.idle()
    except (SomaError, OSError):
        pass  # a bath whose line is gone cannot be told; what stopped the run is the error told


def _calibrate(
    client: ManagementClient,
    bath: BathApi,
    set_points: Sequence[float],
    residual_limit_c: float,
    settle_timeout: float,
    station: str,
    progress: Callable[[CalibrationProgress], None] | None,
) -> CalibrationReport:
    info = client.request_fields("info", timeout=3)
    report = CalibrationReport(info["unit_serial"].decode(errors="replace"), info["firmware_hash"].hex(), bath.identity)
    timeline = Timeline(report.serial, len(set_points), progress)
    # The BCG channel first: a unit out of the bath or a broken channel is refused in
    # seconds, not after the bath's sweep.
    timeline.tell("shaker")
    first = shake(client, bath)
    if not first.seen:
        watch = PresenceWatch(report.serial, bath.reference_c(), unit_c(client))
        measure(client, bath, set_points, settle_timeout, timeline, watch)  # the watch raises once the pads tell
        raise watch.undecided()
    report.bcg_zero = bcg_zero(client)
    gain_q16 = round(Q16 * bcg_gain(first.amplitude))
    samples = measure(client, bath, set_points, settle_timeout, timeline)
    report.before_c = _errors_c(samples)
    values: list[float | bytes] = [*fit_thermistors(samples, residual_limit_c, report)]
    timeline.tell("fit", residual_c=max(report.residual_c.values()))
    values += [report.bcg_zero, gain_q16, int(time.time()), (station or "bench").encode()[:255]]
    timeline.tell("commit")
    report.generation, stored = commit_record(client, values)
    report.bcg_gain = stored["bcg_gain_q16"] / Q16
    timeline.verify()
    timeline.tell("shaker")
    corrected = shake(client, bath).amplitude * report.bcg_gain
    report.bcg_error_after_pct = round(100 * (corrected / BCG_REFERENCE_CODES - 1), 3)
    # From the hottest point down: the bath ends at its coolest, so the overtemp trip that a
    # point at the trip temperature latches, as it should, has no cause left and is cleared.
    hottest_first = sorted(range(len(set_points)), key=lambda i: -set_points[i])
    samples = measure(client, bath, [set_points[i] for i in hottest_first], settle_timeout, timeline)
    by_point = dict(zip(hottest_first, samples, strict=True))
    report.after_c = _errors_c([by_point[i] for i in range(len(set_points))])
    report.faults_cleared, report.faults_latched = clear_own_faults(client, info["fault_mask"])
    timeline.tell("done")
    return report


def _errors_c(samples: Iterable[PointSample]) -> list[dict[str, float]]:
    """Per point of `measure`'s samples: each sensor's reading minus the reference, degC."""
    return [{name: round(temps[i] - reference, 4) for i, name in enumerate(SENSORS)} for reference, _, temps in samples]


def clear_own_faults(client: ManagementClient, latched_before: int) -> tuple[list[str], list[str]]:
    """Clear the faults latched since calibration began (those latched before are the
    operator's to look at); the names of those cleared and of all still latched."""
    cleared, latched = client.request("fault_clear", [ALL_FAULTS & ~latched_before], timeout=3)
    return fault_names(cleared), fault_names(latched)
