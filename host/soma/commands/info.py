"""soma info: who a unit is and how it is doing."""

import json

import click

EPILOG = """\b
Examples:
  soma info --port /dev/pts/7
  soma info --port /dev/pts/7 --json
"""


@click.command(epilog=EPILOG)
@click.option("--port", required=True, help="Serial port of the unit.")
@click.option("--baud", default=115200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(port: str, baud: int, as_json: bool) -> None:
    """Firmware version and hash, protocol hash, serial, reset cause, calibration and faults."""
    from soma.link.session import open_unit

    with open_unit(port, baud) as unit:
        assert unit.info is not None, "open_unit (firmware=True) asked the unit's info"
        info = unit.info.as_dict()
    if as_json:
        click.echo(json.dumps(info))
        return
    for key, value in info.items():
        click.echo(f"{key:18} {value}")
