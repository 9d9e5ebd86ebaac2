"""soma provision: give a unit its sanctuary key and bed id (the key is never printed)."""

import json
import os

import click

from soma_protocol.constants import NO_ROOT

EPILOG = """\b
Examples:
  soma provision --port /dev/pts/7 --sanctuary 7 --bed 1 --new-key sanctuary.key
  soma provision --port /dev/pts/9 --sanctuary 7 --bed 2 --key sanctuary.key
"""


@click.command(epilog=EPILOG)
@click.option("--port", required=True, help="Serial port of the unit.")
@click.option("--sanctuary", "sanctuary_id", required=True, type=click.IntRange(0, 0xFFFF), help="Sanctuary id.")
@click.option(
    "--bed",
    "bed_id",
    required=True,
    type=click.IntRange(1, NO_ROOT - 1),  # 0: not provisioned; NO_ROOT: no bed, on the air
    help="This unit's bed id.",
)
@click.option("--key", "key_file", type=click.Path(dir_okay=False, exists=True), help="Key file (hex) to use.")
@click.option("--new-key", "new_key_file", type=click.Path(dir_okay=False), help="Generate a key into this file.")
@click.option("--baud", default=115200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--db", help="Traceability database (URL or SQLite file; default: $SOMA_DB or the user's).")
@click.option("--station", help="This station's name in the records (default: the host name).")
@click.option("--operator", default="", help="Who provisions, for the records.")
def command(
    port: str,
    sanctuary_id: int,
    bed_id: int,
    key_file: str | None,
    new_key_file: str | None,
    baud: int,
    as_json: bool,
    db: str | None,
    station: str | None,
    operator: str,
) -> None:
    """Write the sanctuary key and bed id into the unit's key record; print only the key's id."""
    from soma.defaults import on_command_line
    from soma.errors import SomaError
    from soma.link.session import open_unit
    from soma.sanctuary.keys import new_key, read_key
    from soma.station.line import provision_recorded
    from soma.station.traceability import Records

    if new_key_file and key_file and not on_command_line(click.get_current_context(), "key_file"):
        key_file = None  # --new-key on the command line over a --key from SOMA_KEY or the station file
    if bool(key_file) == bool(new_key_file):
        raise SomaError("give exactly one of --key FILE or --new-key FILE")
    key = read_key(key_file) if key_file else None
    if new_key_file and os.path.exists(new_key_file):  # refused before the unit is opened
        raise SomaError(f"{new_key_file} exists: refusing to overwrite a key (use --key)")
    key_folder = os.path.dirname(os.path.abspath(new_key_file or "."))
    if new_key_file and not os.path.isdir(key_folder):
        raise SomaError(f"--new-key {new_key_file}: no folder {key_folder} to write it in (create it, or name another)")
    records = Records(db)
    # A unit that refuses (or loses power) is recorded as refused, with the reason.
    with records.stage("provision", "refused", station, operator) as stage, open_unit(port, baud) as unit:
        stage.met(unit.info)
        if key is None:  # written once the unit is known to take it
            assert new_key_file is not None, "exactly one of --key and --new-key (checked above)"
            key = new_key(new_key_file)
        again = (
            f"soma provision --port {port} --sanctuary {sanctuary_id} --bed {bed_id} --key {key_file or new_key_file}"
        )
        key_id = provision_recorded(unit, stage, sanctuary_id, bed_id, key, again)
    if as_json:
        click.echo(json.dumps({"port": port, "sanctuary_id": sanctuary_id, "bed_id": bed_id, "key_id": key_id}))
    else:
        click.echo(f"{port}: sanctuary {sanctuary_id}, bed {bed_id}, key id {key_id}")
