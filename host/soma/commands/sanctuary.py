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
    """The bed's sync state (root, hops, clock skew, the sanctuary's clock), its program and
    ushering (clock times in this host's time zone), Equal Rest: whom it counts and why each
    grant is what it is, and the peers it hears. --json: raw fields (global times in µs,
    power in W) with clock times as ISO 8601 (`*_at`)."""
    from soma.link.session import open_unit
    from soma.sanctuary.status import read_status, summarize

    with open_unit(port, baud) as unit:
        view = summarize(read_status(unit.client))
    if as_json:
        click.echo(json.dumps({"port": port, **view}))
    else:
        _print(view, port)


def _print(view: dict[str, Any], port: str) -> None:
    from datetime import datetime

    from rich.console import Console
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    from soma.sanctuary.clock import format_clock
    from soma.sanctuary.status import format_relative

    now = datetime.fromisoformat(view["read_at"])

    def clock(iso: str) -> str:
        return format_clock(datetime.fromisoformat(iso), now)

    flags = view["flags"]
    sync = "synced" if "synced" in flags else "[yellow]not synced[/yellow]"
    hops = f"{view['hops']} hop" + ("s" if view["hops"] != 1 else "")
    role = "root" if "is_root" in flags else f"follows root {view['root_id']} ({hops})"
    lines = [
        f"bed {view['bed_id']}: {sync}, {role}, skew {view['skew_ppm']:+.3f} ppm",
        f"sanctuary clock {clock(view['read_at'])} (global time {view['global_time_us'] / 1e6:.3f} s)",
    ]
    if view["program_id"]:
        running = ", running" if "program_running" in flags else ""
        starts = "starts" if view["program_start_in_s"] > 0 else "started"
        lines.append(
            f"program {view['program_id']} v{view['program_version']}{running}: {starts} at "
            f"{clock(view['program_start_at'])} ({format_relative(view['program_start_in_s'])})"
        )
    else:
        lines.append("no program")
    if view["ushering_at_us"] is not None:
        ushering = "under way" if "ushering" in flags else "decided"
        lines.append(
            f"Wake-Dream Ushering {ushering}: at {clock(view['ushering_at'])} "
            f"({format_relative(view['ushering_in_s'])})"
        )
    if "fault" in flags:
        lines.append("[red]fault latched[/red] (soma info shows which)")

    count = len(view["peers"])
    peers = Table(title=f"{count} peer{'' if count == 1 else 's'} heard")
    for column in ("bed", "heard", "flags", "root", "hops", "occupancy", "wake", "prog v", "demand", "grant"):
        peers.add_column(column)
    for peer in view["peers"]:
        peers.add_row(
            str(peer["bed_id"]),
            f"{format_relative(-peer['age_s'])}",
            ", ".join(peer["flags"]) or "-",
            str(peer["root_id"]),
            str(peer["hops"]),
            str(peer["occupancy"]),
            str(peer["wake_readiness"]),
            str(peer["program_version"]),
            f"{peer['demand_w']} W",
            f"{peer['grant_w']} W",
        )
    console = Console()
    console.print(Panel("\n".join(lines), title=f"sanctuary seen from {port}", expand=False))
    for line in view["equal_rest"]["lines"]:  # long lines: the terminal wraps them, not rich
        console.print(escape(line), soft_wrap=True)
    console.print(peers)
