"""soma units / soma history: the traceability records."""

import json

import click

DB_HELP = "Database: a SQLAlchemy URL or a SQLite file (default: $SOMA_DB or ~/.local/share/soma/soma.db)."


@click.command(epilog="\b\nExamples:\n  soma units\n  soma units --db postgresql://factory/soma --json")
@click.option("--db", help=DB_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def units(db: str | None, as_json: bool) -> None:
    """List every unit ever flashed, calibrated or bench-tested here."""
    from soma.station.traceability import Records

    found = Records(db, create=False).units()
    if as_json:
        click.echo(json.dumps(found))
        return
    for unit in found:
        click.echo(f"{unit['serial']}  firmware {unit['firmware_hash'] or '-'}  last seen {unit['last_seen']}")


@click.command(epilog="\b\nExamples:\n  soma history 5c0a7d3f01a2\n  soma history 5c0a7d3f01a2 --json")
@click.argument("serial")
@click.option("--db", help=DB_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def history(serial: str, db: str | None, as_json: bool) -> None:
    """Every recorded run of one unit, oldest first."""
    from soma.errors import SomaError
    from soma.station.traceability import Records

    runs = Records(db, create=False).history(serial)
    if not runs:
        raise SomaError(f"no records of unit {serial}", exit_code=1)
    if as_json:
        click.echo(json.dumps(runs))
        return
    for run in runs:
        click.echo(
            f"{run['at']}  {run['kind']:9} {run['outcome']:12} {run['firmware_hash'] or '-':16} {run['station']}"
        )
