"""soma units / soma history: the traceability records."""

import json
import sys
from typing import TYPE_CHECKING

import click
from rich import box

if TYPE_CHECKING:
    from rich.console import Console

    from soma.station.traceability import RunRow

DB_HELP = (
    "Database: a SQLite file or a URL such as postgresql://user@host/soma "
    "(default: $SOMA_DB or ~/.local/share/soma/soma.db)."
)
STATUS_STYLE = {"ok": "green", "failed": "red", "refused": "red", "started": "yellow"}


@click.command(epilog="\b\nExamples:\n  soma units\n  soma units --db postgresql://factory/soma --json")
@click.option("--db", help=DB_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def units(db: str | None, as_json: bool) -> None:
    """Every unit flashed, calibrated, bench-tested or provisioned, with the latest run of
    each stage (the bench's: the latest full bench; a partial one only while there is none)."""
    from rich.table import Table

    from soma.station.traceability import STAGES, Records

    found = Records(db, create=False).units()
    if as_json:
        click.echo(json.dumps(found))
        return
    table = Table("unit", "firmware", *STAGES, "last seen", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for unit in found:
        cells = [_stage_cell(unit["stages"][stage]) for stage in STAGES]
        table.add_row(unit["serial"], unit["firmware_hash"] or "-", *cells, _when(unit["last_seen"]))
    _console().print(table)


@click.command(epilog="\b\nExamples:\n  soma history 5c0a7d3f01a2\n  soma history 5c0a7d3f01a2 --json")
@click.argument("serial")
@click.option("--db", help=DB_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def history(serial: str, db: str | None, as_json: bool) -> None:
    """Every recorded run of one unit, oldest first: stage, outcome, status, scope and reason."""
    from rich.table import Table

    from soma.errors import SomaError
    from soma.station.traceability import Records

    runs = Records(db, create=False).history(serial)
    if not runs:
        raise SomaError(f"no records of unit {serial}", exit_code=1)
    if as_json:
        click.echo(json.dumps(runs))
        return
    table = Table(
        "at",
        "stage",
        "outcome",
        "scope",
        "firmware",
        "station",
        "operator",
        "reason",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    for run in runs:
        outcome = f"[{STATUS_STYLE[run['status']]}]{run['outcome']}[/]"
        where = (run["firmware_hash"] or "-", run["station"], run["operator"] or "-")
        table.add_row(_when(run["at"]), run["kind"], outcome, run["scope"], *where, run["reason"])
    _console().print(table)


def _console() -> "Console":
    """The terminal's width on a terminal; into a pipe or a file, rows never wrapped."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=400)


def _when(iso: str) -> str:
    return iso[:19].replace("T", " ")


def _stage_cell(run: "RunRow | None") -> str:
    if run is None:
        return "-"
    scope = "" if run["scope"] == "full" else f" ({run['scope']})"
    return f"[{STATUS_STYLE[run['status']]}]{run['outcome']}{scope}[/]"
