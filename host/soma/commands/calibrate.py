"""soma calibrate: multi-point thermistor calibration of a unit in the calibration bath, and
its bed sensor (BCG) channel's zero and gain against the bath fixture's reference shaker.

Its progress goes to stdout as it runs: a live table on a terminal, one line per phase
otherwise (a log), JSON lines with --json; the report follows."""

import dataclasses
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.console import Group

    from soma.station.calibration import CalibrationProgress, CalibrationReport

EPILOG = """\b
Examples:
  soma calibrate --port /dev/pts/7 --bath /dev/pts/9
  soma calibrate --port /dev/pts/7 --bath /dev/pts/9 --points 15,25,35,42 --json
"""
PLAIN_SETTLING_EVERY_S = 60.0  # a log line while the bath settles, to show the run is alive


@click.command(epilog=EPILOG)
@click.option("--port", required=True, help="Serial port of the unit (placed in the bath).")
@click.option("--bath", "bath_port", required=True, help="Serial port of the calibration bath.")
@click.option("--points", default="15,22,29,36,42", show_default=True, help="Set points, degC, comma-separated.")
@click.option("--residual-limit", default=0.05, show_default=True, type=float, help="Largest fit residual, degC.")
@click.option("--settle-timeout", default=900, show_default=True, type=float, help="Seconds to wait per point.")
@click.option("--max-error", default=0.1, show_default=True, type=float, help="Largest error after calibration, degC.")
@click.option(
    "--max-bcg-error", default=2.0, show_default=True, type=float, help="Largest BCG amplitude error after, %."
)
@click.option("--db", help="Traceability database (URL or SQLite file).")
@click.option("--station", help="This station's name in the records (default: the host name).")
@click.option("--operator", default="", help="Who calibrates, for the records.")
@click.option("--json", "as_json", is_flag=True, help="Progress and the report as JSON lines.")
def command(
    port: str,
    bath_port: str,
    points: str,
    residual_limit: float,
    settle_timeout: float,
    max_error: float,
    max_bcg_error: float,
    db: str | None,
    station: str | None,
    operator: str,
    as_json: bool,
) -> None:
    """Check the unit is in the bath (its bed sensor sees the reference shake), measure the
    BCG channel's zero (shaker off) and gain (1 Hz reference shake), refuse a broken
    channel; settle the bath at each point, fit Steinhart-Hart per sensor, refuse a poor
    fit; write and read back the record, then measure every point and the shake again and
    report before and after. Exit 1 if an error after calibration is over its bar. Progress
    on stdout: live on a terminal, a line per phase otherwise, JSON lines with --json."""
    from soma.errors import SomaError
    from soma.link.serial_link import SerialLink
    from soma.link.session import open_unit
    from soma.station.calibration import Bath, calibrate
    from soma.station.traceability import Records

    try:
        set_points = tuple(float(value) for value in points.split(","))
    except ValueError:
        raise SomaError(f"--points: not a list of temperatures: {points!r}") from None
    if len(set_points) < 3:
        raise SomaError("--points: at least three set points are needed for a Steinhart-Hart fit")
    records = Records(db)
    # Whatever stops a calibration once the unit is known (not in the bath, a bath that does
    # not answer, a poor fit, a power cut) is a refusal, recorded with its reason.
    with records.stage("calibrate", "refused", station, operator) as stage, open_unit(port) as unit:
        stage.met(unit.info)
        try:
            with SerialLink(bath_port, 9600) as bath_link, shown_progress(as_json) as progress:
                report = calibrate(
                    unit.client,
                    Bath(bath_link),
                    set_points,
                    residual_limit,
                    settle_timeout,
                    station or "",
                    progress=progress,
                )
        except KeyboardInterrupt:
            stage.done("aborted", reason="stopped by the operator")
            raise
        passed = report.max_error_after_c <= max_error and abs(report.bcg_error_after_pct) <= max_bcg_error
        reason = (
            "" if passed else f"an error after calibration is over its bar ({max_error} degC, BCG {max_bcg_error} %)"
        )
        stage.done("pass" if passed else "fail", report.firmware_hash, report.__dict__, reason=reason)
    if as_json:
        fields = {**report.__dict__, "max_error_after_c": report.max_error_after_c, "passed": passed}
        click.echo(json.dumps({"event": "report", **fields}))
    else:
        click.echo("\n".join(report_lines(report, set_points)))
        bars = f"{max_error} degC, BCG {max_bcg_error} %"
        click.echo("PASSED" if passed else f"FAILED: an error after calibration is over its bar ({bars})")
    sys.exit(0 if passed else 1)


@contextmanager
def shown_progress(as_json: bool) -> Iterator[Callable[["CalibrationProgress"], None]]:
    """The progress callback for stdout: JSON lines, a live table on a terminal, or a line
    per phase."""
    from rich.console import Console
    from rich.live import Live

    if as_json:
        yield lambda event: click.echo(json.dumps({"event": "progress", **dataclasses.asdict(event)}))
        return
    console = Console()
    if not console.is_terminal:
        yield PlainLog()
        return
    view = LiveView()
    with Live(console=console, transient=True, get_renderable=view.render, refresh_per_second=4):
        yield view.update


class PlainLog:
    """One line per phase (and one a minute while the bath settles)."""

    def __init__(self) -> None:
        self._last: tuple[str, str, int] | None = None
        self._shown_at = 0.0

    def __call__(self, event: "CalibrationProgress") -> None:
        now = time.monotonic()
        step = (event.sweep, event.phase, event.point)
        if step != self._last or (event.phase == "settling" and now - self._shown_at >= PLAIN_SETTLING_EVERY_S):
            self._last, self._shown_at = step, now
            click.echo(describe(event))


PHASE_WORDS = {
    ("calibrate", "shaker"): "reference shake: is the unit in the bath; the BCG channel's zero and gain",
    ("verify", "shaker"): "reference shake again: the BCG amplitude with the stored gain",
    ("calibrate", "fit"): "Steinhart-Hart fit",
    ("calibrate", "commit"): "writing and committing the calibration record",
    ("verify", "done"): "done",
}


def step_words(event: "CalibrationProgress") -> str:
    """What the calibration does: "point 2/5 22.0 degC: settling", "Steinhart-Hart fit"."""
    if event.target_c is None:
        return PHASE_WORDS.get((event.sweep, event.phase), event.phase)
    sweep = "point" if event.sweep == "calibrate" else "check"
    return f"{sweep} {event.point}/{event.points} {event.target_c:.1f} degC: {event.phase}"


def describe(event: "CalibrationProgress") -> str:
    """One line for a progress event: where the calibration is, what it reads, how long is left."""
    parts = [f"{event.serial}: {step_words(event)}"]
    if event.bath_c is not None:
        parts.append(f"bath {event.bath_c:.2f} degC")
    if event.unit_c is not None:
        parts.append("unit " + " ".join(f"{value:.2f}" for value in event.unit_c) + " degC")
    if event.residual_c is not None:
        parts.append(f"worst residual {event.residual_c:.4f} degC")
    if event.phase == "settling":
        expected = "" if event.expected_s is None else f" of ~{duration(event.expected_s)}"
        parts.append(f"{duration(event.elapsed_s)}{expected}")
    if event.seconds_left is not None and event.phase != "done":
        parts.append(f"~{duration(event.seconds_left)} left")
    return ", ".join(parts)


def duration(seconds: float) -> str:
    """12 s, 4 min 05 s, 1 h 02 min."""
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class LiveView:
    """The live table: a row per point of each sweep (how long it took to settle, what the
    bath and the unit read), the step under way and how long is left."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, int], list[str]] = {}
        self._event: CalibrationProgress | None = None
        self._began = time.monotonic()
        self._lock = threading.Lock()  # the calibration updates, Live's thread renders

    def update(self, event: "CalibrationProgress") -> None:
        with self._lock:
            self._update(event)

    def _update(self, event: "CalibrationProgress") -> None:
        self._event = event
        for key, row in self._rows.items():  # the points before this step are done
            if key != (event.sweep, event.point):
                row[2] = "done"
        if event.target_c is None:
            return
        cells = self._rows.setdefault((event.sweep, event.point), [""] * 6)
        cells[0] = f"{'point' if event.sweep == 'calibrate' else 'check'} {event.point}/{event.points}"
        cells[1] = f"{event.target_c:.1f}"
        cells[2] = event.phase
        if event.phase == "settling":
            cells[3] = duration(event.elapsed_s)
        if event.bath_c is not None:
            cells[4] = f"{event.bath_c:.3f}"
        if event.unit_c is not None:
            cells[5] = "  ".join(f"{value:.2f}" for value in event.unit_c)

    def render(self) -> "Group":
        with self._lock:
            return self._render()

    def _render(self) -> "Group":
        from rich.console import Group
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for column in ("", "set °C", "state", "settling", "bath °C", "unit °C (pad_left pad_right ambient)"):
            table.add_column(column)
        for row in self._rows.values():
            table.add_row(*row)
        event = self._event
        so_far = f"{duration(time.monotonic() - self._began)} so far"
        if event is None:
            return Group(f"starting ({so_far})", table)
        if event.seconds_left is None:
            left = "time left known once a point has settled"
        else:
            left = f"~{duration(event.seconds_left)} left"
        header = f"{event.serial}: {step_words(event)}  ({so_far}, {left})"
        return Group(header, table)


def report_lines(report: "CalibrationReport", set_points: Sequence[float]) -> Iterator[str]:
    """The text report: each point's error before -> after per sensor, then the BCG channel."""
    yield f"{report.serial}: calibrated, generation {report.generation}"
    for point, before, after in zip(set_points, report.before_c, report.after_c, strict=True):
        cells = "  ".join(f"{name} {before[name]:+.3f} -> {after[name]:+.3f}" for name in before)
        yield f"  {point:5.1f} degC  {cells}"
    yield (
        f"  BCG         zero {report.bcg_zero:+d} codes  gain {report.bcg_gain:.4f}"
        f"  amplitude error after {report.bcg_error_after_pct:+.2f} %"
    )
    if report.faults_cleared:
        yield f"  faults latched during calibration, cleared once cool: {', '.join(report.faults_cleared)}"
    if report.faults_latched:
        yield f"  faults still latched (see `soma faults`): {', '.join(report.faults_latched)}"
