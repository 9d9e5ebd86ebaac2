"""soma ports: the serial ports here, and which are Soma units (running, or stopped at the REPL),
blank MicroPython boards or other devices."""

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import click

EPILOG = """\b
Examples:
  soma ports
  soma ports --json
"""


@click.command(epilog=EPILOG)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per port.")
@click.option("--control", help="A running simulator's control socket (default: `soma sim`'s).")
def command(as_json: bool, control: str | None) -> None:
    """List serial ports (and a running `soma sim`'s beds) with what answers on each."""
    import serial.tools.list_ports

    from soma.link.session import probe

    ports = [port.device for port in serial.tools.list_ports.comports()] + _simulated_ports(control)
    with ThreadPoolExecutor(max_workers=max(1, len(ports))) as pool:
        found = list(pool.map(probe, ports))
    for entry in found:
        if as_json:
            click.echo(json.dumps(entry))
        else:
            click.echo(_line(entry))
    if not found and not as_json:
        click.echo("no serial ports")


def _simulated_ports(control: str | None) -> list[str]:
    from soma.sim.control import DEFAULT_CONTROL, call

    try:
        return [bed["port"] for bed in call(control or DEFAULT_CONTROL, {"op": "status"})["ok"]["beds"]]
    except (OSError, KeyError, ValueError):
        return []


def _line(entry: dict[str, Any]) -> str:
    """A port's line: what answers, in the words its failure has in every other command."""
    from soma.errors import CAUSES

    port, kind = entry["port"], entry["kind"]
    if kind == "soma":
        line = f"{port}: soma {entry['serial']} firmware {entry['firmware']}"
        if not entry["protocol_matches"]:
            line += f" (protocol {entry['protocol_hash']}: not this soma's, flash it with `soma flash --port {port}`)"
        return line
    cause = {"stopped": "firmware_stopped", "micropython": "blank", "other": "not_soma"}.get(kind)
    if cause is None:
        return f"{port}: unknown"
    return CAUSES[cause].template.format(port=port, device=entry.get("device", ""))
