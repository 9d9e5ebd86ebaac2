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
            what = entry["kind"]
            if entry["kind"] == "soma":
                what += f" {entry['serial']} firmware {entry['firmware']}"
                if not entry["protocol_matches"]:
                    what += f" (protocol {entry['protocol_hash']}: not this soma's, flash it with soma flash)"
            click.echo(f"{entry['port']}: {what}")
    if not found and not as_json:
        click.echo("no serial ports")


def _simulated_ports(control: str | None) -> list[str]:
    from soma.sim.control import DEFAULT_CONTROL, call

    try:
        return [bed["port"] for bed in call(control or DEFAULT_CONTROL, {"op": "status"})["ok"]["beds"]]
    except (OSError, KeyError, ValueError):
        return []
