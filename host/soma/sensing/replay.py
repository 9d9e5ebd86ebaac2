"""Raw bed-sensor recordings through the firmware's own sensing pipeline, under MicroPython.

A recording is a CSV file with a header: a column of raw BCG ADC codes (0..65535; named
`bcg`, or chosen with `column`), optionally a `time_s` column. Samples are at `rate_hz`
(100 by default), or where `time_s` puts them; anything but an even 100 Hz is resampled
to 100 Hz (averaged over each 10 ms when faster, interpolated when slower). Below
MIN_RATE_HZ the heartbeat band is lost: refused. `soma sim record` writes such files,
with the sleeper's ground truth in further columns (ignored here, drawn by the plot).
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import tempfile
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from soma import paths
from soma.errors import SomaError
from soma_protocol.enums import Occupancy, SleepState, VitalsValid

RATE_HZ = 100
MIN_RATE_HZ = 50
EPOCH_S = 30
DRIVER = Path(__file__).resolve().parent.parent / "mp" / "sensing_replay.py"
OCCUPANCY = {int(value): value.name for value in Occupancy}
SLEEP_STATES = {int(state): state.name for state in SleepState}
VALID_HEART, VALID_BREATHING = int(VitalsValid.heart), int(VitalsValid.breathing)


class RecordingError(SomaError):
    """A recording that cannot be replayed: the message says where and why."""


@dataclass
class Recording:
    codes: array[int]  # uint16 at RATE_HZ
    source_rate_hz: float
    columns: dict[str, list[float]]  # every numeric column by name, as read (for plots)
    times_s: list[float]  # of the rows as read


class EpochValid(TypedDict):
    heart: bool
    breathing: bool


class Epoch(TypedDict):
    """One epoch as `soma replay` prints it (epoch_dict)."""

    t_s: int
    presence: str
    movement_s: int
    moving: bool
    breaths_per_min: float | None
    heart_bpm: float | None
    valid: EpochValid
    sleep_state: str


PipelineCost = dict[str, float]  # the replay driver's last line: samples, us_per_sample, ..._bytes


def read_recording(path: str | os.PathLike[str], column: str | None = None, rate_hz: float | None = None) -> Recording:
    """The file's BCG codes at 100 Hz; RecordingError with a one-line reason if it is bad."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    rows = [row for row in rows if row and not row[0].startswith("#")]
    if not rows:
        raise RecordingError(f"{path}: empty")
    header = [name.strip() for name in rows[0]]
    if all(_is_number(name) for name in header):
        raise RecordingError(f"{path}: no header row (expected column names, e.g. time_s,bcg)")
    column = column or ("bcg" if "bcg" in header else None)
    if column is None or column not in header:
        raise RecordingError(f"{path}: no column {column or 'bcg'!r} (columns: {', '.join(header)})")
    if len(rows) < 2:
        raise RecordingError(f"{path}: a header but no samples")
    columns: dict[str, list[float]] = {}
    for index, name in enumerate(header):
        values: list[float] = []
        for line, row in enumerate(rows[1:], start=2):
            text = row[index].strip() if index < len(row) else ""
            if name in (column, "time_s"):
                if not _is_number(text):
                    raise RecordingError(f"{path}:{line}: {name} {text!r} is not a number")
                values.append(float(text))
            elif _is_number(text):
                values.append(float(text))
            else:
                break  # a text column (e.g. the sleep stage): not numeric, kept out
        else:
            columns[name] = values
    codes = columns[column]
    for line, code in enumerate(codes, start=2):
        if not 0 <= code <= 65535:
            raise RecordingError(f"{path}:{line}: {column} {code:g} is not a 16-bit ADC code (0..65535)")
    times = columns.get("time_s")
    if times is None:
        rate = RATE_HZ if rate_hz is None else rate_hz
        times = [n / rate for n in range(len(codes))]
    else:
        if any(b <= a for a, b in zip(times, times[1:], strict=False)):
            raise RecordingError(f"{path}: time_s does not increase on every row")
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else RATE_HZ
        if rate_hz is not None and abs(rate - rate_hz) > 0.02 * rate_hz:
            raise RecordingError(f"{path}: time_s says {rate:.1f} Hz, but the rate given is {rate_hz:g} Hz")
    if rate < MIN_RATE_HZ:
        raise RecordingError(f"{path}: {rate:g} Hz is too slow: the heartbeat band needs >= {MIN_RATE_HZ} Hz")
    return Recording(_resample(times, codes), rate, columns, times)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _resample(times: Sequence[float], codes: Sequence[float]) -> array[int]:
    """Codes on an even 100 Hz grid from t0: the mean of each 10 ms bin, or the line
    between the samples around it where a bin holds none."""
    t0 = times[0]
    slots = int((times[-1] - t0) * RATE_HZ) + 1
    sums, counts = [0.0] * slots, [0] * slots
    for t, code in zip(times, codes, strict=True):
        slot = min(slots - 1, int((t - t0) * RATE_HZ + 0.5))
        sums[slot] += code
        counts[slot] += 1
    out = array("H", bytes(2 * slots))
    j = 0
    for slot in range(slots):
        if counts[slot]:
            out[slot] = round(sums[slot] / counts[slot])
            continue
        t = t0 + slot / RATE_HZ
        while j + 1 < len(times) and times[j + 1] < t:
            j += 1
        a, b = times[j], times[min(j + 1, len(times) - 1)]
        share = 0.0 if b <= a else (t - a) / (b - a)
        out[slot] = round(codes[j] + share * (codes[min(j + 1, len(codes) - 1)] - codes[j]))
    return out


def run_pipeline(
    codes: array[int], zero: int = 0, gain: float = 1.0, heap: str = "96K"
) -> tuple[list[Epoch], PipelineCost]:
    """(epochs, cost) of the firmware's sensing.py over `codes` (uint16 at 100 Hz) under
    MicroPython. Epochs as dicts (epoch_dict); cost as the driver reports it."""
    fd, name = tempfile.mkstemp(prefix="soma-replay-", suffix=".bin")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(codes.tobytes())
        result = subprocess.run(
            [paths.micropython(), "-X", f"heapsize={heap}", str(DRIVER), name, str(zero), str(round(gain * 65536))],
            capture_output=True,
            text=True,
            env=dict(os.environ, MICROPYPATH=str(paths.firmware_dir())),
            timeout=600 + len(codes) / 1000,
        )
    finally:
        os.unlink(name)
    if result.returncode != 0:
        raise SomaError(f"the sensing pipeline failed under MicroPython: {result.stderr.strip()[-500:]}")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return [epoch_dict(line["epoch"]) for line in lines[:-1]], lines[-1]


def epoch_dict(fields: Sequence[int]) -> Epoch:
    """One epoch as `soma replay` prints it (EPOCH_* fields of firmware/sensing.py)."""
    number, occupancy, moving_s, breaths_x10, heart_x10, valid, state = fields
    return Epoch(
        t_s=number * EPOCH_S,  # the epoch's end
        presence=OCCUPANCY.get(occupancy, "unknown"),
        movement_s=moving_s,
        moving=moving_s > 0,
        breaths_per_min=breaths_x10 / 10 if valid & VALID_BREATHING else None,
        heart_bpm=heart_x10 / 10 if valid & VALID_HEART else None,
        valid=EpochValid(heart=bool(valid & VALID_HEART), breathing=bool(valid & VALID_BREATHING)),
        sleep_state=SLEEP_STATES.get(state, "unknown"),
    )
