"""Multi-point thermistor calibration in a calibration bath.

At each set point the bath must report itself stable; then the reference probe and the
unit's raw ADC codes are averaged over a few readings. The codes become resistances
through the SB-1 divider, and a Steinhart-Hart curve (1/T = a + b ln R + c ln^3 R) is fitted
per sensor by least squares. A fit whose residual exceeds the limit is refused; otherwise
it is written to the unit, committed, read back, and every point is measured again with
the calibrated firmware, so the report shows the error before and after.
"""

import math
import time
from dataclasses import dataclass, field

from .errors import SomaError

SET_POINTS_C = (15.0, 22.0, 29.0, 36.0, 42.0)
SENSORS = ("pad_left", "pad_right", "ambient")
RESIDUAL_LIMIT_C = 0.05
READINGS = 6  # averaged per point
PULLUP_OHM = 10_000.0
FULL_SCALE = 65_535
KELVIN = 273.15


class Bath:
    """The calibration bath's SCPI-like line (any object with read(timeout) and write(bytes))."""

    def __init__(self, link):
        self._link = link

    def ask(self, command, timeout=3.0):
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

    def settle_at(self, temp_c, timeout):
        self._link.write(f"SOUR:TEMP {temp_c:.3f}\n".encode())
        deadline = time.monotonic() + timeout
        while self.ask("STAB?") != "1":
            if time.monotonic() > deadline:
                raise SomaError(f"the bath did not settle at {temp_c} degC within {timeout} s")
            time.sleep(0.1)

    def reference_c(self):
        return float(self.ask("MEAS:TEMP?"))


def resistance_ohm(code):
    code = min(max(code, 1.0), FULL_SCALE - 1.0)
    return PULLUP_OHM * code / (FULL_SCALE - code)


def fit_steinhart_hart(points):
    """(a, b, c) by least squares from (resistance_ohm, temp_c) pairs; at least three."""
    rows = []
    for resistance, temp_c in points:
        ln_r = math.log(resistance)
        rows.append(((1.0, ln_r, ln_r**3), 1.0 / (temp_c + KELVIN)))
    normal = [[sum(x[i] * x[j] for x, _ in rows) for j in range(3)] for i in range(3)]
    rhs = [sum(x[i] * y for x, y in rows) for i in range(3)]
    return tuple(_solve(normal, rhs))


def curve_c(coefficients, resistance):
    a, b, c = coefficients
    ln_r = math.log(resistance)
    return 1.0 / (a + b * ln_r + c * ln_r**3) - KELVIN


def _solve(matrix, rhs):
    """Gaussian elimination with partial pivoting (3 unknowns)."""
    n = len(rhs)
    rows = [list(matrix[i]) + [rhs[i]] for i in range(n)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(rows[r][col]))
        rows[col], rows[pivot] = rows[pivot], rows[col]
        if abs(rows[col][col]) < 1e-300:
            raise SomaError("calibration points do not determine a curve (too few distinct temperatures)")
        for r in range(n):
            if r != col:
                factor = rows[r][col] / rows[col][col]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[col], strict=True)]
    return [rows[i][n] / rows[i][i] for i in range(n)]


@dataclass
class CalibrationReport:
    serial: str
    coefficients: dict = field(default_factory=dict)  # sensor -> (a, b, c)
    residual_c: dict = field(default_factory=dict)  # sensor -> worst fit residual
    before_c: list = field(default_factory=list)  # per point: {sensor: unit - reference}
    after_c: list = field(default_factory=list)
    generation: int = 0

    @property
    def max_error_after_c(self):
        return max(abs(error) for point in self.after_c for error in point.values())


def measure(client, bath, set_points, settle_timeout):
    """Per set point: (reference degC, averaged raw codes, averaged unit degC) of each sensor."""
    samples = []
    for temp_c in set_points:
        bath.settle_at(temp_c, settle_timeout)
        references, codes, temps = [], [[], [], []], [[], [], []]
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


def calibrate(client, bath, set_points=SET_POINTS_C, residual_limit_c=RESIDUAL_LIMIT_C, settle_timeout=600, station=""):
    """Calibrate the unit behind `client` (a ManagementClient) in `bath`; return the report."""
    serial = client.request("info", timeout=3)[3].decode(errors="replace")
    report = CalibrationReport(serial)
    samples = measure(client, bath, set_points, settle_timeout)
    report.before_c = [
        {name: round(temps[i] - reference, 4) for i, name in enumerate(SENSORS)} for reference, _, temps in samples
    ]
    values = []
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
    values += [0, 1 << 16, int(time.time()), (station or "bench").encode()[:255]]
    client.request("calibration_write", values, timeout=5)
    report.generation = client.request("calibration_commit", timeout=10)[0]
    stored = client.request("calibration_read", timeout=5)
    if stored[0] != 1 or stored[1] != report.generation:
        raise SomaError("the calibration record read back does not match what was written")
    after = measure(client, bath, set_points, settle_timeout)
    report.after_c = [
        {name: round(temps[i] - reference, 4) for i, name in enumerate(SENSORS)} for reference, _, temps in after
    ]
    return report
