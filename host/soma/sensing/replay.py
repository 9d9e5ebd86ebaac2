"""Raw bed-sensor recordings through the firmware's own sensing pipeline, under MicroPython.

A recording is a CSV file with a header: a column of raw BCG ADC codes (0..65535; named
`bcg`, or chosen with `column`), optionally a `time_s` column. Samples are at `rate_hz`
(100 by default), or where `time_s` puts them; anything but an even 100 Hz is resampled
to 100 Hz (averaged over each 10 ms when faster, interpolated when slower). Below
MIN_RATE_HZ the heartbeat band is lost: refused. `soma sim record` writes such files,
with the sleeper's ground truth in further columns (ignored here, drawn by the plot).

A recording is read once, row by row: its codes go to a temporary file of uint16 (2 bytes
a sample) that the MicroPython driver reads in chunks, and only a thinned copy of its
columns is kept for the plot, so memory does not grow with the recording's length.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import tempfile
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO, TypedDict

from soma import paths
from soma.errors import SomaError
from soma_protocol.enums import Occupancy, SleepState, VitalsValid

RATE_HZ = 100
MIN_RATE_HZ = 50
EPOCH_S = 30
LINE_MAX_CHARS = 1 << 20  # a CSV line past this is refused before the csv module holds it
PLOT_ROWS = 20_000  # rows kept for the plot: between this and twice this, evenly spread
DRIVER = Path(__file__).resolve().parent.parent / "mp" / "sensing_replay.py"
OCCUPANCY = {int(value): value.name for value in Occupancy}
SLEEP_STATES = {int(state): state.name for state in SleepState}
VALID_HEART, VALID_BREATHING = int(VitalsValid.heart), int(VitalsValid.breathing)


class RecordingError(SomaError):
    """A recording that cannot be replayed: the message says where and why."""


@dataclass
class Recording:
    codes_path: Path  # uint16 little-endian at RATE_HZ, removed when read_recording's block ends
    samples: int  # at RATE_HZ
    source_rate_hz: float
    columns: dict[str, list[float]] = field(default_factory=dict)  # numeric columns by name, thinned (plots)
    times_s: list[float] = field(default_factory=list)  # of the rows kept in columns

    @property
    def seconds(self) -> float:
        return self.samples / RATE_HZ


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


@contextmanager
def read_recording(
    path: str | os.PathLike[str], column: str | None = None, rate_hz: float | None = None
) -> Iterator[Recording]:
    """The file's BCG codes at 100 Hz, in a temporary file for the block's duration;
    RecordingError with a one-line reason if the file is bad or shorter than an epoch."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix="soma-replay-", suffix=".bin")
    try:
        with os.fdopen(fd, "wb") as codes_file:
            recording = _read(path, column, rate_hz, codes_file)
        recording.codes_path = Path(name)
        if recording.samples < EPOCH_S * RATE_HZ:
            raise RecordingError(f"{path}: {recording.seconds:g} s of samples, too short for one {EPOCH_S} s epoch")
        yield recording
    finally:
        os.unlink(name)


def _read(path: Path, column: str | None, rate_hz: float | None, codes_file: BinaryIO) -> Recording:
    lines = _Lines(path)
    try:
        with path.open(newline="") as f:
            lines.source = f
            return _parse(path, csv.reader(lines), lines, column, rate_hz, codes_file)
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise RecordingError(f"{path}:{lines.number + 1}: cannot read it (not UTF-8 text)") from None
    except csv.Error as exc:
        raise RecordingError(f"{path}:{lines.number}: not CSV ({exc})") from None


class _Lines:
    """A text file's lines for csv.reader, each refused past LINE_MAX_CHARS (a field is
    bounded by csv's own limit, a line of many fields by this)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.source: TextIO | None = None
        self.number = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        assert self.source is not None
        line = self.source.readline(LINE_MAX_CHARS + 1)
        if not line:
            raise StopIteration
        self.number += 1
        if len(line) > LINE_MAX_CHARS:
            raise RecordingError(f"{self.path}:{self.number}: a line longer than {LINE_MAX_CHARS >> 10} KiB")
        return line


def _parse(
    path: Path,
    rows: Iterator[list[str]],
    lines: _Lines,
    column: str | None,
    rate_hz: float | None,
    codes_file: BinaryIO,
) -> Recording:
    header = next((row for row in rows if row and not row[0].startswith("#")), None)
    if header is None:
        raise RecordingError(f"{path}: empty")
    header = [name.strip() for name in header]
    if all(_is_number(name) for name in header):
        raise RecordingError(f"{path}: no header row (expected column names, e.g. time_s,bcg)")
    column = column or ("bcg" if "bcg" in header else None)
    if column is None or column not in header:
        raise RecordingError(f"{path}: no column {column or 'bcg'!r} (columns: {', '.join(header)})")
    code_at = header.index(column)
    time_at = header.index("time_s") if "time_s" in header else None
    nominal_rate = RATE_HZ if rate_hz is None else rate_hz
    resampler = _Resampler(_CodeWriter(codes_file))
    plot = _PlotRows(header)
    count = 0
    first_t = t = 0.0
    for row in rows:
        if not row or row[0].startswith("#"):
            continue
        code = _field(path, lines.number, row, code_at, column)
        if not 0 <= code <= 65535:
            raise RecordingError(f"{path}:{lines.number}: {column} {code:g} is not a 16-bit ADC code (0..65535)")
        if time_at is None:
            t = count / nominal_rate
        else:
            t_row = _field(path, lines.number, row, time_at, "time_s")
            if count and t_row <= t:
                raise RecordingError(f"{path}:{lines.number}: time_s does not increase on every row")
            t = t_row
        if not count:
            first_t = t
        resampler.add(t, code)
        plot.add(t, row)
        count += 1
    if not count:
        raise RecordingError(f"{path}: a header but no samples")
    samples = resampler.finish()
    rate = (count - 1) / (t - first_t) if count > 1 and time_at is not None else nominal_rate
    if time_at is not None and rate_hz is not None and abs(rate - rate_hz) > 0.02 * rate_hz:
        raise RecordingError(f"{path}: time_s says {rate:.1f} Hz, but the rate given is {rate_hz:g} Hz")
    if rate < MIN_RATE_HZ:
        raise RecordingError(f"{path}: {rate:g} Hz is too slow: the heartbeat band needs >= {MIN_RATE_HZ} Hz")
    return Recording(Path(), samples, rate, plot.columns, plot.times_s)


def _field(path: Path, line: int, row: Sequence[str], at: int, name: str) -> float:
    text = row[at].strip() if at < len(row) else ""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise RecordingError(f"{path}:{line}: {name} {text!r} is not a number")
    return value


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


class _CodeWriter:
    """Codes into a binary file, a chunk at a time."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._chunk = array("H")

    def put(self, code: int) -> None:
        self._chunk.append(code)
        if len(self._chunk) >= 8192:
            self.flush()

    def flush(self) -> None:
        self._out.write(self._chunk.tobytes())
        del self._chunk[:]


class _Resampler:
    """Codes on an even 100 Hz grid from the first sample's time, as they come: the mean of
    the samples nearest each slot (within 5 ms), or the line between the samples around it
    where a slot has none. The grid ends with the slot the last sample is in (one past it
    is folded back into it), so the last slot made is held until the next one."""

    def __init__(self, out: _CodeWriter) -> None:
        self._out = out
        self._t0: float | None = None
        self._written = 0
        self._held: tuple[float, int] | None = None  # the last slot made: (sum, count); count 0: interpolated
        self._slot = 0  # the slot being filled
        self._sum = 0.0
        self._count = 0
        self._last = (0.0, 0.0)  # the last sample: (t, code)

    def add(self, t: float, code: float) -> None:
        if self._t0 is None:
            self._t0 = t
        slot = int((t - self._t0) * RATE_HZ + 0.5)
        if self._count and slot != self._slot:
            self._hold(self._sum, self._count)
            last_t, last_code = self._last
            for empty in range(self._slot + 1, slot):  # slots no sample fell in
                share = (self._t0 + empty / RATE_HZ - last_t) / (t - last_t)
                self._hold(last_code + share * (code - last_code), 0)
            self._sum, self._count = 0.0, 0
        self._slot = slot
        self._sum += code
        self._count += 1
        self._last = (t, code)

    def finish(self) -> int:
        """Write every slot; return how many there are."""
        if self._t0 is not None and self._count:
            slots = int((self._last[0] - self._t0) * RATE_HZ + 1e-6) + 1  # 64.99 * 100 is 6498.999...
            if self._slot == slots and self._held is not None:  # one past the grid: folded back
                held_sum, held_count = self._held if self._held[1] else (0.0, 0)  # it replaces an interpolation
                self._held = (held_sum + self._sum, held_count + self._count)
            else:
                self._hold(self._sum, self._count)
        self._write_held()
        self._out.flush()
        return self._written

    def _hold(self, total: float, count: int) -> None:
        self._write_held()
        self._held = (total, count)

    def _write_held(self) -> None:
        if self._held is not None:
            total, count = self._held
            self._out.put(round(total / count if count else total))
            self._written += 1
            self._held = None


class _PlotRows:
    """Every numeric column of evenly spread rows, PLOT_ROWS to twice that of them: every
    `stride`-th row is kept, and the stride doubles (every other kept row dropped) when
    they are twice PLOT_ROWS. A column with a value that is not a number (not an empty
    field: a gap) is left out."""

    def __init__(self, header: Sequence[str]) -> None:
        self._header = list(header)
        self.columns: dict[str, list[float]] = {name: [] for name in header if name != "time_s"}
        self.times_s: list[float] = []
        self._stride = 1
        self._row = 0

    def add(self, t: float, row: Sequence[str]) -> None:
        self._row += 1
        if (self._row - 1) % self._stride:
            return
        self.times_s.append(t)
        for at, name in enumerate(self._header):
            values = self.columns.get(name)
            if values is None:
                continue
            text = row[at].strip() if at < len(row) else ""
            if not text:
                values.append(math.nan)
            elif _is_number(text):
                values.append(float(text))
            else:
                del self.columns[name]  # a text column (e.g. the sleep stage)
        if len(self.times_s) >= 2 * PLOT_ROWS:
            self._stride *= 2
            del self.times_s[1::2]
            for values in self.columns.values():
                del values[1::2]


def run_pipeline(
    codes: array[int], zero: int = 0, gain: float = 1.0, heap: str = "96K"
) -> tuple[list[Epoch], PipelineCost]:
    """run_pipeline_file over `codes` (uint16 at 100 Hz) in memory."""
    fd, name = tempfile.mkstemp(prefix="soma-replay-", suffix=".bin")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(codes.tobytes())
        return run_pipeline_file(Path(name), zero, gain, heap)
    finally:
        os.unlink(name)


def run_pipeline_file(
    codes_path: Path, zero: int = 0, gain: float = 1.0, heap: str = "96K"
) -> tuple[list[Epoch], PipelineCost]:
    """(epochs, cost) of the firmware's sensing.py over the file of codes (uint16 at
    100 Hz) under MicroPython, which reads it in chunks. Every whole epoch is closed (the
    driver lets the last one finish after the samples end). Epochs as dicts (epoch_dict);
    cost as the driver reports it."""
    samples = codes_path.stat().st_size // 2
    result = subprocess.run(
        [
            paths.micropython(),
            "-X",
            f"heapsize={heap}",
            str(DRIVER),
            str(codes_path),
            str(zero),
            str(round(gain * 65536)),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, MICROPYPATH=str(paths.firmware_dir())),
        timeout=600 + samples / 1000,
    )
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
