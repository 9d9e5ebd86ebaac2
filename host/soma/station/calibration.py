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
"""

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from soma.errors import SomaError
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

Coefficients = tuple[float, float, float]  # Steinhart-Hart (a, b, c)
# One set point as `measure` gives it: (reference degC, averaged raw code per sensor, averaged unit degC per sensor)
PointSample = tuple[float, list[float], list[float]]


class BathLine(Protocol):
    """The bath's line: a SerialLink, or anything that reads and writes bytes alike."""

    def read(self, timeout: float) -> bytes: ...

    def write(self, data: bytes) -> object: ...


class BathApi(Protocol):
    """What calibration asks of a bath: a Bath, or a SharedBath over one."""

    def settle_at(self, temp_c: float, timeout: float) -> None: ...

    def reference_c(self) -> float: ...

    def set_shaker(self, codes: float) -> None: ...

    def shaker_hz(self) -> float: ...

    def idle(self) -> None: ...


class Bath:
    """The calibration bath's SCPI-like line (any object with read(timeout) and write(bytes))."""

    def __init__(self, link: BathLine) -> None:
        self._link = link

    def ask(self, command: str, timeout: float = 3.0) -> str:
        self._link.write(command.encode() + b"\n")
        reply = b""
        deadline = time.monotonic() + timeout
        while not reply.endswith(b"\n") and time.monotonic() < deadline:
            reply += self._link.read(0.05)
        text = reply.decode(errors="replace").strip()
        if not text:
            raise SomaError(f"the calibration bath does not answer {command!r}")
        if text.startswith("ERR"):
            raise SomaError(f"the calibration bath refused {command!r}: {text}")
        return text

    def settle_at(self, temp_c: float, timeout: float) -> None:
        self._link.write(f"SOUR:TEMP {temp_c:.3f}\n".encode())
        deadline = time.monotonic() + timeout
        while self.ask("STAB?") != "1":
            if time.monotonic() > deadline:
                raise SomaError(f"the bath did not settle at {temp_c} degC within {timeout} s")
            time.sleep(0.1)

    def reference_c(self) -> float:
        return float(self.ask("MEAS:TEMP?"))

    def set_shaker(self, codes: float) -> None:
        """Set the reference shaker's amplitude (0: off) and confirm the bath took it."""
        self._link.write(f"VIBR:AMPL {codes:g}\n".encode())
        answer = self.ask("VIBR:AMPL?")
        if float(answer) != codes:
            raise SomaError(f"the calibration bath's shaker is at {answer} codes, not {codes:g}")

    def shaker_hz(self) -> float:
        return float(self.ask("VIBR:FREQ?"))

    def idle(self) -> None:
        """Back to BATH_IDLE_C, shaker off (not waited for)."""
        self._link.write(f"SOUR:TEMP {BATH_IDLE_C:.3f}\nVIBR:AMPL 0\n".encode())


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

    def settle_at(self, temp_c: float, timeout: float) -> None:
        self._together(lambda: self._bath.settle_at(temp_c, timeout))

    def set_shaker(self, codes: float) -> None:
        self._together(lambda: self._bath.set_shaker(codes))

    def reference_c(self) -> float:
        with self._line:
            return self._bath.reference_c()

    def shaker_hz(self) -> float:
        with self._line:
            return self._bath.shaker_hz()

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
) -> "list[CalibrationReport | SomaError]":
    """Calibrate every unit behind `clients` in one bath at once; a CalibrationReport or
    the SomaError that stopped it, per unit, in order."""
    shared = SharedBath(bath, len(clients))

    def one(client: ManagementClient) -> "CalibrationReport | SomaError":
        try:
            return calibrate(client, shared, set_points, residual_limit_c, settle_timeout, station)
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
    omega = 2 * math.pi * freq_hz
    rows = [((math.sin(omega * t), math.cos(omega * t), 1.0), y) for t, y in samples]
    s, c, mean = _least_squares(rows)
    return math.hypot(s, c), mean


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


def measure(
    client: ManagementClient, bath: BathApi, set_points: Iterable[float], settle_timeout: float
) -> list[PointSample]:
    """Per set point: (reference degC, averaged raw codes, averaged unit degC) of each sensor."""
    samples: list[PointSample] = []
    for temp_c in set_points:
        bath.settle_at(temp_c, settle_timeout)
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
        samples.append(
            (sum(references) / READINGS, [sum(c) / READINGS for c in codes], [sum(t) / READINGS for t in temps])
        )
    return samples


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


def bcg_zero(client: ManagementClient, bath: BathApi) -> int:
    """The BCG channel's mean code at rest minus mid scale (shaker off); refused past the limit."""
    bath.set_shaker(0)
    codes = [code for _, code in sample_bcg(client, BCG_ZERO_S)]
    zero = round(sum(codes) / len(codes)) - ADC_MIDSCALE
    if abs(zero) > BCG_ZERO_LIMIT:
        raise SomaError(f"BCG channel: zero {zero:+d} codes beyond +-{BCG_ZERO_LIMIT}: a broken channel, not committed")
    return zero


def bcg_amplitude(client: ManagementClient, bath: BathApi, reference: float = BCG_REFERENCE_CODES) -> float:
    """The amplitude (codes) the BCG channel reads with the shaker at `reference`."""
    freq_hz = bath.shaker_hz()
    with shaking(bath, reference):
        return fit_sine(sample_bcg(client, BCG_AMPLITUDE_S), freq_hz)[0]


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
) -> CalibrationReport:
    """Calibrate the unit behind `client` (a ManagementClient) in `bath`; return the report.
    The bath is left idle (BATH_IDLE_C, shaker off) however the calibration ends."""
    try:
        return _calibrate(client, bath, set_points, residual_limit_c, settle_timeout, station)
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
) -> CalibrationReport:
    info = client.request_fields("info", timeout=3)
    report = CalibrationReport(info["unit_serial"].decode(errors="replace"), info["firmware_hash"].hex())
    # The BCG channel first: a broken one is refused in seconds, not after the bath's sweep.
    report.bcg_zero = bcg_zero(client, bath)
    gain_q16 = round(Q16 * bcg_gain(bcg_amplitude(client, bath)))
    samples = measure(client, bath, set_points, settle_timeout)
    report.before_c = _errors_c(samples)
    values: list[float | bytes] = [*fit_thermistors(samples, residual_limit_c, report)]
    values += [report.bcg_zero, gain_q16, int(time.time()), (station or "bench").encode()[:255]]
    report.generation, stored = commit_record(client, values)
    report.bcg_gain = stored["bcg_gain_q16"] / Q16
    corrected = bcg_amplitude(client, bath) * report.bcg_gain
    report.bcg_error_after_pct = round(100 * (corrected / BCG_REFERENCE_CODES - 1), 3)
    # From the hottest point down: the bath ends at its coolest, so the overtemp trip that a
    # point at the trip temperature latches, as it should, has no cause left and is cleared.
    hottest_first = sorted(range(len(set_points)), key=lambda i: -set_points[i])
    samples = measure(client, bath, [set_points[i] for i in hottest_first], settle_timeout)
    by_point = dict(zip(hottest_first, samples, strict=True))
    report.after_c = _errors_c([by_point[i] for i in range(len(set_points))])
    report.faults_cleared, report.faults_latched = clear_own_faults(client, info["fault_mask"])
    return report


def _errors_c(samples: Iterable[PointSample]) -> list[dict[str, float]]:
    """Per point of `measure`'s samples: each sensor's reading minus the reference, degC."""
    return [{name: round(temps[i] - reference, 4) for i, name in enumerate(SENSORS)} for reference, _, temps in samples]


def clear_own_faults(client: ManagementClient, latched_before: int) -> tuple[list[str], list[str]]:
    """Clear the faults latched since calibration began (those latched before are the
    operator's to look at); the names of those cleared and of all still latched."""
    cleared, latched = client.request("fault_clear", [ALL_FAULTS & ~latched_before], timeout=3)
    return fault_names(cleared), fault_names(latched)
