"""soma sanctuary: what one bed knows of its sanctuary (sync, program, ushering, power, peers)."""

import json

import click

EPILOG = """\b
Examples:
  soma sanctuary status --port /dev/pts/7
  soma sanctuary status --port /dev/pts/7 --json
"""


@click.group(epilog=EPILOG)
def command():
    """The sanctuary as one bed sees it."""


@command.command(epilog=EPILOG)
@click.option("--port", required=True, help="Serial port of any one bed of the sanctuary.")
@click.option("--baud", default=115200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(port, baud, as_json):
    """The bed's sync state (root, hops, clock skew, global time), its program and ushering,
    its Equal Rest budget, demand and grant, and the peers it hears."""
    from ..serial_link import SerialLink
    from .program import STATUS_TIMEOUT_S, connect, unit_errors

    with SerialLink(port, baud) as link, unit_errors(port):
        client = connect(link.management(), port)
        view = summarize(read_status(client, STATUS_TIMEOUT_S))
    if as_json:
        click.echo(json.dumps({"port": port, **view}))
    else:
        _print(view, port)


def read_status(client, timeout):
    """sanctuary_status fields with every peer the bed knows: the bed answers a page of
    peers at a time (small frames for its small heap), so this asks page after page."""
    fields = client.request_fields("sanctuary_status", [0], timeout=timeout)
    peers = fields["peers"][: fields["page_count"]]
    while fields["page_count"] and len(peers) < fields["peer_count"]:
        page = client.request_fields("sanctuary_status", [len(peers)], timeout=timeout)
        peers += page["peers"][: page["page_count"]]
        if not page["page_count"]:
            break  # the bed forgot peers meanwhile
    fields["peers"] = peers
    fields["peer_count"] = len(peers)
    return fields


def summarize(fields):
    """sanctuary_status fields (as request_fields gives them) as a JSON-ready dict: flag,
    occupancy and readiness names, only the peers in use, times relative to the bed's now."""
    from soma_protocol import schema

    occupancy = _names(schema.Occupancy)
    readiness = _names(schema.WakeReadiness)
    now = fields["global_time_us"]
    view = {
        key: fields[key]
        for key in ("bed_id", "root_id", "hops", "global_time_us", "program_id", "program_version", "budget_w")
    }
    view["flags"] = _flags(fields["flags"])
    view["skew_ppm"] = fields["skew_ppb"] / 1000
    view["demand_w"], view["grant_w"] = fields["demand_w"], fields["grant_w"]
    has_program = bool(fields["program_id"])
    view["program_start_us"] = fields["program_start_us"] if has_program else None
    view["program_start_in_s"] = (fields["program_start_us"] - now) / 1e6 if has_program else None
    decided = bool(fields["ushering_at_us"])  # 0: not decided yet
    view["ushering_at_us"] = fields["ushering_at_us"] if decided else None
    view["ushering_in_s"] = (fields["ushering_at_us"] - now) / 1e6 if decided else None
    view["peers"] = [
        {
            "bed_id": peer["bed_id"],
            "age_s": peer["age_ms"] / 1000,
            "flags": _flags(peer["flags"]),
            "root_id": peer["root_id"],
            "hops": peer["hops"],
            "occupancy": occupancy.get(peer["occupancy"], peer["occupancy"]),
            "wake_readiness": readiness.get(peer["wake_readiness"], peer["wake_readiness"]),
            "program_version": peer["program_version"],
            "demand_w": peer["demand_w"],
            "grant_w": peer["grant_w"],
        }
        for peer in fields["peers"]
    ]
    return view


def _names(enum):
    return {int(value): str(name) for name, value in enum.encmapping.items()}


def _flags(bits):
    from soma_protocol import schema

    return [name for name, bit in schema.BeaconFlags.flags.items() if bits & bit]


def _relative(seconds):
    from ..program import format_duration

    if seconds >= 0:
        return f"in {format_duration(round(seconds))}"
    return f"{format_duration(round(-seconds))} ago"


def _print(view, port):
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table

    from .program import format_global_time

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
            f"{format_global_time(start)} ({_relative(view['program_start_in_s'])})"
        )
    else:
        lines.append("no program")
    if view["ushering_at_us"] is not None:
        ushering = "under way" if "ushering" in flags else "decided"
        lines.append(
            f"Wake-Dream Ushering {ushering}: at {format_global_time(view['ushering_at_us'])} "
            f"({_relative(view['ushering_in_s'])})"
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
