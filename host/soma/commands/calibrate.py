"""soma calibrate: multi-point thermistor calibration of a unit in the calibration bath, and
its bed sensor (BCG) channel's zero and gain against the bath fixture's reference shaker."""

import json
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from soma.station.calibration import CalibrationReport

EPILOG = """\b
Examples:
  soma calibrate --port /dev/pts/7 --bath /dev/pts/9
  soma calibrate --port /dev/pts/7 --bath /dev/pts/9 --points 15,25,35,42 --json
"""


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
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
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
    """Settle the bath at each point, fit Steinhart-Hart per sensor, refuse a poor fit; measure
    the BCG channel's zero (shaker off) and gain (1 Hz reference shake), refuse a broken
    channel; write and read back the record, then measure every point and the shake again
    and report before and after. Exit 1 if an error after calibration is over its bar."""
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
    # Whatever stops a calibration (no unit in the bath, a poor fit, a power cut) is a refusal, recorded.
    with (
        records.stage("calibrate", "refused", station, operator) as stage,
        SerialLink(bath_port, 9600) as bath_link,
        open_unit(port) as unit,
    ):
        stage.met(unit.info)
        report = calibrate(unit.client, Bath(bath_link), set_points, residual_limit, settle_timeout, station or "")
        passed = report.max_error_after_c <= max_error and abs(report.bcg_error_after_pct) <= max_bcg_error
        reason = (
            "" if passed else f"an error after calibration is over its bar ({max_error} degC, BCG {max_bcg_error} %)"
        )
        stage.done("pass" if passed else "fail", report.firmware_hash, report.__dict__, reason=reason)
    if as_json:
        click.echo(json.dumps({**report.__dict__, "max_error_after_c": report.max_error_after_c, "passed": passed}))
    else:
        click.echo("\n".join(report_lines(report, set_points)))
        bars = f"{max_error} degC, BCG {max_bcg_error} %"
        click.echo("PASSED" if passed else f"FAILED: an error after calibration is over its bar ({bars})")
    sys.exit(0 if passed else 1)


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
