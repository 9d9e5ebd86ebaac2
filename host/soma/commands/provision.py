"""soma provision: give a unit its sanctuary key and bed id (the key is never printed)."""

import json
import os
import secrets

import click

EPILOG = """\b
Examples:
  soma provision --port /dev/pts/7 --sanctuary 7 --bed 1 --new-key sanctuary.key
  soma provision --port /dev/pts/9 --sanctuary 7 --bed 2 --key sanctuary.key
"""

KEY_BYTES = 32


@click.command(epilog=EPILOG)
@click.option("--port", required=True, help="Serial port of the unit.")
@click.option("--sanctuary", "sanctuary_id", required=True, type=click.IntRange(0, 0xFFFF), help="Sanctuary id.")
@click.option("--bed", "bed_id", required=True, type=click.IntRange(0, 0xFFFF), help="This unit's bed id.")
@click.option("--key", "key_file", type=click.Path(dir_okay=False, exists=True), help="Key file (hex) to use.")
@click.option("--new-key", "new_key_file", type=click.Path(dir_okay=False), help="Generate a key into this file.")
@click.option("--baud", default=115200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(port, sanctuary_id, bed_id, key_file, new_key_file, baud, as_json):
    """Write the sanctuary key and bed id into the unit's key record; print only the key's id."""
    from ..errors import SomaError
    from ..unit import UnitLink

    if bool(key_file) == bool(new_key_file):
        raise SomaError("give exactly one of --key FILE or --new-key FILE")
    if key_file:
        key = read_key(key_file)
    else:
        if os.path.exists(new_key_file):
            raise SomaError(f"{new_key_file} exists: refusing to overwrite a key (use --key)")
        key = secrets.token_bytes(KEY_BYTES)
        descriptor = os.open(new_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(key.hex() + "\n")
    with UnitLink(port, baud) as link:
        key_id = link.management().provision(sanctuary_id, bed_id, key).hex()
    if as_json:
        click.echo(json.dumps({"port": port, "sanctuary_id": sanctuary_id, "bed_id": bed_id, "key_id": key_id}))
    else:
        click.echo(f"{port}: sanctuary {sanctuary_id}, bed {bed_id}, key id {key_id}")


def read_key(path):
    from ..errors import SomaError

    try:
        key = bytes.fromhex(open(path).read().strip())
    except (OSError, ValueError) as exc:
        raise SomaError(f"cannot read key file {path}: {exc}") from None
    if len(key) != KEY_BYTES:
        raise SomaError(f"key file {path}: {len(key)} bytes, expected {KEY_BYTES}")
    return key
