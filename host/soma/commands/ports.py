"""soma ports: the serial ports here, and which are Soma units or blank MicroPython boards."""

import json
from concurrent.futures import ThreadPoolExecutor

import click

EPILOG = """\b
Examples:
  soma ports
  soma ports --json
"""


@click.command(epilog=EPILOG)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per port.")
@click.option("--control", help="A running simulator's control socket (default: `soma sim`'s).")
def command(as_json, control):
    """List serial ports (and a running `soma sim`'s beds) with what answers on each."""
    import serial.tools.list_ports

    ports = [port.device for port in serial.tools.list_ports.comports()] + _simulated_ports(control)
    with ThreadPoolExecutor(max_workers=max(1, len(ports))) as pool:
        found = list(pool.map(_probe, ports))
    for entry in found:
        if as_json:
            click.echo(json.dumps(entry))
        else:
            what = entry["kind"] + (
                f" {entry['serial']} firmware {entry['firmware']}" if entry["kind"] == "soma" else ""
            )
            click.echo(f"{entry['port']}: {what}")
    if not found and not as_json:
        click.echo("no serial ports")


def _simulated_ports(control):
    from ..sim.control import call
    from .sim import DEFAULT_CONTROL

    try:
        return [bed["port"] for bed in call(control or DEFAULT_CONTROL, {"op": "status"})["ok"]["beds"]]
    except (OSError, KeyError, ValueError):
        return []


def _probe(port):
    from ..errors import SomaError
    from ..management import ManagementTimeout
    from ..unit import UnitLink

    try:
        with UnitLink(port) as link:
            try:
                info = link.management().request("info", timeout=1)
                return {
                    "port": port,
                    "kind": "soma",
                    "serial": info[3].decode(errors="replace"),
                    "firmware": info[0].decode(errors="replace"),
                    "firmware_hash": info[1].hex(),
                }
            except ManagementTimeout:
                pass
            with link.raw_repl(attempts=1):
                pass
            return {"port": port, "kind": "micropython"}
    except SomaError as exc:
        return {"port": port, "kind": "unknown", "error": str(exc)}
