"""What one bed knows of its sanctuary (sanctuary_status), read page by page, as a
JSON-ready view, and the sanctuary's global time as people read it."""

from enum import IntEnum
from typing import TYPE_CHECKING, Any

from soma_protocol.enums import BeaconFlags, Occupancy, WakeReadiness

if TYPE_CHECKING:
    from soma.link.management import ManagementClient

STATUS_TIMEOUT_S = 3


def read_status(client: "ManagementClient", timeout: float = STATUS_TIMEOUT_S) -> dict[str, Any]:
    """sanctuary_status fields with every peer the bed knows: the bed answers a page of
    peers at a time (small frames for its small heap), so this asks page after page.
    `client` is a ManagementClient (request_fields)."""
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


def summarize(fields: dict[str, Any]) -> dict[str, Any]:
    """sanctuary_status fields (as read_status gives them) as a JSON-ready dict: flag,
    occupancy and readiness names, only the peers in use, times relative to the bed's now."""
    occupancy = _names(Occupancy)
    readiness = _names(WakeReadiness)
    now = fields["global_time_us"]
    view: dict[str, Any] = {
        key: fields[key]
        for key in ("bed_id", "root_id", "hops", "global_time_us", "program_id", "program_version", "budget_w")
    }
    view["flags"] = flag_names(fields["flags"])
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
            "flags": flag_names(peer["flags"]),
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


def is_synced(flags: int) -> bool:
    """Whether a beacon's (or status') flag bits say the bed is synchronised."""
    return "synced" in flag_names(flags)


def flag_names(bits: int) -> list[str]:
    return [str(flag.name) for flag in BeaconFlags if bits & flag]


def _names(enum: type[IntEnum]) -> dict[int, str]:
    return {int(member): member.name for member in enum}


def format_global_time(us: float) -> str:
    """Global time (µs on the sanctuary's clock) as seconds."""
    return f"{us / 1e6:.3f} s"


def format_relative(seconds: float) -> str:
    """A time relative to now: "in 5m", "2m ago"."""
    from soma.sanctuary.program import format_duration

    if seconds >= 0:
        return f"in {format_duration(round(seconds))}"
    return f"{format_duration(round(-seconds))} ago"
