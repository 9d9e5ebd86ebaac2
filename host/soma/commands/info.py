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
def command(port, baud, as_json):
    """Firmware version and hash, protocol hash, serial, reset cause, calibration and faults."""
    from soma_protocol import codec, ir

    from ..errors import SomaError
    from ..management import ManagementTimeout
    from ..unit import UnitLink

    with UnitLink(port, baud) as link:
        try:
            values = link.management().request("info", timeout=3)
        except ManagementTimeout:
            raise SomaError(f"{port}: no Soma unit answers (blank, or not a Soma board?)") from None
    info = codec.render("info_response", values)
    if values[2] != ir.protocol_hash():
        raise SomaError(
            f"{port}: protocol hash mismatch: the unit speaks {values[2]:08x}, this host {ir.protocol_hash():08x}"
            " (flash the unit, or use the matching host tools)"
        )
    info["firmware_version"] = bytes.fromhex(info["firmware_version"]).decode(errors="replace")
    info["unit_serial"] = bytes.fromhex(info["unit_serial"]).decode(errors="replace")
    info["protocol_hash"] = f"{info['protocol_hash']:08x}"  # as the manifest and `soma decode` show it
    if as_json:
        click.echo(json.dumps(info))
        return
    for key, value in info.items():
        click.echo(f"{key:18} {value}")
