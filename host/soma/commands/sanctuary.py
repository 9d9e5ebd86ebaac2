"""soma sanctuary: what one bed knows of its sanctuary (sync, program, ushering, power, peers)."""

import json
from typing import Any

import click

EPILOG = """\b
Examples:
  soma sanctuary status --port /dev/pts/7
  soma sanctuary status --port /dev/pts/7 --json
"""


@click.group(epilog=EPILOG)
def command() -> None:
    """The sanctuary as one bed sees it."""


@command.command(epilog=EPILOG)
@click.option("--port", required=True, help="Serial port of any one bed of the sanctuary.")
@click.option("--baud", default=115200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(port: str, baud: int, as_json: bool) -> None:
    """The bed's sync state (root, hops, clock skew, global time), its program and ushering,
    its Equal Rest budget, demand and grant, and the peers it hears."""
    from soma.link.session import open_unit
    from soma.sanctuary.status import read_status, summarize

    with open_unit(port, baud) as unit:
        view = summarize(read_status(unit.client))
    if as_json:
        click.echo(json.dumps({"port": port, **view}))
    else:
        _print(view, port)


def _print(view: dict[str, Any], port: str) -> None:
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table

    from soma.sanctuary.status import format_global_time, format_relative

    flags = view["flags"]
    sync = "synced" if "synced" in flags else "[yellow]not synced[/yellow]"
    hops = f"{view['hops']} hop" + ("s" if view["hops"] != 1 else "")
    role = "root" if "is_root" in flags else f"follows root {view['root_id']} ({hops})"
    lines = [
        f"bed {view['bed_id']}: {sync}, {role}, skew {view['skew_ppm']:+.3f} ppm",
        f"global time {format_global_time(view['global_time_us'])}",
    ]
    if view["program_id"]:
        start = view["program_start_us"]
        running = ", running" if "program_running" in flags else ""
        starts = "starts" if view["program_start_in_s"] > 0 else "started"
        lines.append(
            f"program {view['program_id']} v{view['program_version']}{running}: {starts} at "
            f"{format_global_time(start)} ({format_relative(view['program_start_in_s'])})"
        )
    else:
        lines.append("no program")
    if view["ushering_at_us"] is not None:
        ushering = "under way" if "ushering" in flags else "decided"
        lines.append(
            f"Wake-Dream Ushering {ushering}: at {format_global_time(view['ushering_at_us'])} "
            f"({format_relative(view['ushering_in_s'])})"
        )
    budget = f"{view['budget_w']} W" if view["budget_w"] else "not set"
    lines.append(f"Equal Rest: budget {budget}, demand {view['demand_w']} W, grant {view['grant_w']} W")
    if "fault" in flags:
        lines.append("[red]fault latched[/red] (soma info shows which)")

    peers = Table(title=f"{len(view['peers'])} peers heard")
    for column in ("bed", "age s", "flags", "root", "hops", "occupancy", "wake", "prog v", "demand W", "grant W"):
        peers.add_column(column)
    for peer in view["peers"]:
        peers.add_row(
            str(peer["bed_id"]),
            f"{peer['age_s']:.1f}",
            ", ".join(peer["flags"]) or "-",
            str(peer["root_id"]),
            str(peer["hops"]),
            str(peer["occupancy"]),
            str(peer["wake_readiness"]),
            str(peer["program_version"]),
            str(peer["demand_w"]),
            str(peer["grant_w"]),
        )
    Console().print(Panel("\n".join(lines), title=f"sanctuary seen from {port}", expand=False), peers)
