"""soma bench: run a declarative bench plan against one unit; report to the terminal,
JUnit XML and JSON; record the run."""

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from soma.station.bench.report import BenchReport

EPILOG = """\b
Examples:
  soma bench --port /dev/pts/7 --fixture /dev/pts/9 --key sanctuary.key
  soma bench --port /dev/pts/7 --fixture /dev/pts/9 --test-key --junit bench.xml --report bench.json
  soma bench --port /dev/pts/7 --plan my-plan.toml --json
  soma bench --port /dev/pts/7 --only identity --only heater_left
"""


@click.command(epilog=EPILOG)
@click.option("--port", required=True, help="Serial port of the unit.")
@click.option("--fixture", "fixture_port", help="Serial port of the station's fixture (the calibration bath).")
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False), help="Plan file (TOML; default: the SB-1 plan).")
@click.option(
    "--key", "key_file", type=click.Path(dir_okay=False, exists=True), help="The provisioned unit's key file (radio)."
)
@click.option(
    "--test-key",
    is_flag=True,
    help="Test an unprovisioned unit's radio with the public bench key (it keeps it until soma provision).",
)
@click.option("--only", "only", multiple=True, help="Run only this step of the plan (repeatable).")
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False), help="Write the results as JUnit XML.")
@click.option("--report", "report_file", type=click.Path(dir_okay=False), help="Write the results as JSON.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of a table.")
@click.option("--baud", default=115200, show_default=True)
@click.option("--db", help="Traceability database (URL or SQLite file).")
@click.option("--station", help="This station's name in the records (default: the host name).")
@click.option("--operator", default="", help="Who runs the bench, for the records.")
def command(
    port: str,
    fixture_port: str | None,
    plan_file: str | None,
    key_file: str | None,
    test_key: bool,
    only: tuple[str, ...],
    junit_file: str | None,
    report_file: str | None,
    as_json: bool,
    baud: int,
    db: str | None,
    station: str | None,
    operator: str,
) -> None:
    """Run every step of the plan (identity, sensors, heaters, runaway trip, outputs, radio,
    watchdog...): each reports its measurements, limits and verdict. Exit 1 if any fails.
    The radio is tested with the unit's key (--key), or on an unprovisioned unit with the
    public test key if asked (--test-key); otherwise the run is refused before it starts."""
    import socket

    from soma.defaults import on_command_line
    from soma.errors import SomaError
    from soma.link.serial_link import SerialLink
    from soma.link.session import open_unit
    from soma.sanctuary.keys import read_key
    from soma.station.bench.kinds import Station
    from soma.station.bench.plan import DEFAULT_PLAN, Plan
    from soma.station.bench.report import write_reports
    from soma.station.bench.run import run_plan
    from soma.station.calibration import Bath
    from soma.station.traceability import Records

    plan = Plan.load(plan_file or DEFAULT_PLAN)
    if only:
        plan = plan.only(only)
    if plan.needs_fixture and not fixture_port:
        raise SomaError(f"{plan.path}: this plan measures with the fixture: give --fixture PORT")
    if key_file and test_key and not on_command_line(click.get_current_context(), "key_file"):
        key_file = None  # --test-key on the command line over a --key from SOMA_KEY or the station file
    if key_file and test_key:
        raise SomaError("give --key FILE (a provisioned unit) or --test-key (an unprovisioned one), not both")
    key = read_key(key_file) if key_file else None
    station = station or socket.gethostname()
    records = Records(db)
    # A bench cut down with --only is recorded as partial: it never stands for the unit's verdict.
    with records.stage("bench", "aborted", station, operator, plan.scope) as stage, open_unit(port, baud) as unit:
        stage.met(unit.info)
        assert unit.info is not None, "open_unit (firmware=True) asked the unit's info"
        if any(step.kind == "radio_loopback" for step in plan.steps):  # refused before anything runs
            Station(unit.client, key=key, test_key=test_key).radio_key(unit.info.fields)
        fixture_link = SerialLink(fixture_port, 9600) if fixture_port else None
        try:
            fixture = Bath(fixture_link) if fixture_link else None
            report = run_plan(plan, Station(unit.client, fixture, key, test_key), progress=_progress(as_json))
        finally:
            if fixture_link:
                fixture_link.close()
        failed = [step.id for step in report.steps if not step.passed]
        reason = f"failed: {', '.join(failed)}" if failed else ""
        stage.done("pass" if report.passed else "fail", report.firmware_hash, report.as_dict(), reason=reason)
    write_reports(report, junit_file, report_file, station)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    else:
        _print_table(report)
    sys.exit(0 if report.passed else 1)


def _progress(quiet: bool) -> Callable[[int, int, str], None] | None:
    if quiet or not sys.stderr.isatty():
        return None

    def show(index: int, total: int, step_id: str) -> None:
        click.echo(f"\r[{index + 1}/{total}] {step_id:<24}", nl=False, err=True)

    return show


def _print_table(report: "BenchReport") -> None:
    from rich.console import Console
    from rich.table import Table

    from soma.station.bench.kinds import KEY_BENCH

    table = Table(title=f"{report.plan} v{report.plan_version} — unit {report.serial or '?'}")
    for column in ("step", "measurement", "value", "limits", "verdict"):
        table.add_column(column)
    for step in report.steps:
        verdict = "[green]PASS[/green]" if step.passed else "[red]FAIL[/red]"
        if step.error:
            table.add_row(step.id, "", "", "", verdict + f" {step.error}")
        for index, m in enumerate(step.measurements):
            limits = f"{'' if m.low is None else m.low}..{'' if m.high is None else m.high}" if m.limited else ""
            mark = "" if not m.limited else ("ok" if m.passed else "[red]out[/red]")
            first = index == 0 and not step.error
            label, shown = (step.id, verdict) if first else ("", "")
            table.add_row(label, m.name, f"{m.value:.4g}", limits, f"{shown} {mark}")
    console = Console()
    console.print(table)
    left = f"key: arrived with {report.key_arrived}, leaves with {report.key_left}"
    console.print(left if report.key_left != KEY_BENCH else f"[yellow]{left}[/yellow]")
    for note in report.notes:
        console.print(f"note: {note}")
    overall = "[green]PASSED[/green]" if report.passed else "[red]FAILED[/red]"
    console.print(f"{overall} in {report.seconds:.1f} s")
