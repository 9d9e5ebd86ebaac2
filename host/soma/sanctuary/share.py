"""Equal Rest as one bed sees it: whom it counts and at what, and why each grant is what it
is. The bed's sanctuary_status says what it counted (its peers' demands and ages, the beds
never heard it reserves, the own demand its grant counts); this runs the firmware's own
water-filling (firmware/power_share.py) over the same data, so the shares it shows are the
ones the bed computed, and says in words why.

    view = explain(fields, clock)   # fields: read_status(); clock: status.GlobalClock
    view["lines"]                   # the reasons, one line per bed
"""

from typing import TYPE_CHECKING, Any, Protocol, cast

from soma import paths
from soma_protocol.enums import BeaconFlags, ShareFlags

if TYPE_CHECKING:
    from soma.sanctuary.clock import GlobalClock

BEACON_PERIOD_MS = 1000  # firmware/sanctuary.py's _PERIOD_US: a peer's age is in these


class _PowerShare(Protocol):
    STALE_PERIODS: int
    JOIN_PERIODS: int

    def grants(self, budget_w: int, demands: list[tuple[int, int, bool]], worst_case_w: int) -> dict[int, int]: ...


def power_share() -> _PowerShare:
    """The firmware's power_share module, under CPython."""
    return cast(_PowerShare, paths.import_firmware_module("power_share"))


def explain(fields: dict[str, Any], clock: "GlobalClock") -> dict[str, Any]:
    """Equal Rest on the bed whose sanctuary_status `fields` these are: a JSON-ready dict of
    what it counted (budget_w, worst_case_w, program_beds, heard, stale, faulted, unheard_beds,
    join_until_us/at, flags), each bed's share in its view (`beds`: bed_id, demand_w, counted_w,
    share_w, grant_w as the bed itself advertises it, reason) and `lines`, the same in words."""
    module = power_share()
    bed_id, budget, worst = fields["bed_id"], fields["budget_w"], fields["worst_case_w"]
    flags = [str(flag.name) for flag in ShareFlags if fields["share"] & flag]
    peers = fields["peers"]
    stale_ms = module.STALE_PERIODS * BEACON_PERIOD_MS
    fresh = {peer["bed_id"]: peer["age_ms"] < stale_ms for peer in peers}
    unheard = fields["unheard_beds"]
    view: dict[str, Any] = {
        "budget_w": budget,
        "worst_case_w": worst,
        "program_beds": fields["program_beds"] if fields["program_id"] else None,
        "heard": sorted([bed_id] + [peer["bed_id"] for peer in peers if fresh[peer["bed_id"]]]),
        "stale": sorted(peer["bed_id"] for peer in peers if not fresh[peer["bed_id"]]),
        "faulted": sorted(peer["bed_id"] for peer in peers if peer["flags"] & BeaconFlags.fault),
        "unheard_beds": unheard,
        "join_until_us": fields["join_until_us"] or None,
        "join_until_at": clock.iso(fields["join_until_us"]) if fields["join_until_us"] else None,
        "flags": flags,
    }
    if not fields["program_id"] or not budget:
        why = "no program" if not fields["program_id"] else "the program sets no budget"
        view["beds"] = []
        view["lines"] = [f"Equal Rest: {why}: no limit but each bed's own ({worst} W)"]
        return view
    demands = [(peer["bed_id"], peer["demand_w"], fresh[peer["bed_id"]]) for peer in peers]
    demands.append((bed_id, fields["counted_demand_w"], True))
    reserved_w = unheard * worst
    shares = module.grants(budget - reserved_w, demands, worst)
    left = max(0, budget - reserved_w - worst * len(view["stale"]))
    # the beds heard that get less than they ask: all at the fair level (give or take a watt)
    short = [shares[peer] for peer, demand, is_fresh in demands if is_fresh and shares[peer] < min(demand, worst)]
    level = min(short, default=None)
    view["left_w"] = left
    view["level_w"] = level
    lines = [_counted_line(fields, view, clock)]
    if reserved_w or view["stale"]:
        taken = reserved_w + worst * len(view["stale"])
        lines.append(
            f"  reserved first: {taken} W of the {budget} W budget (each bed not heard at its worst case, {worst} W); "
            f"{left} W left for the beds heard"
        )
    beds: list[dict[str, Any]] = []
    for peer_id, demand, is_fresh in sorted(demands):
        peer = next((p for p in peers if p["bed_id"] == peer_id), None)
        entry = {
            "bed_id": peer_id,
            "demand_w": fields["demand_w"] if peer is None else demand,
            "counted_w": min(max(demand, 0), worst) if is_fresh else worst,
            "share_w": shares[peer_id],
            "grant_w": fields["grant_w"] if peer is None else peer["grant_w"],
            "reason": _reason(fields, peer, demand, is_fresh, shares[peer_id], left, level, len(short), clock),
        }
        beds.append(entry)
        lines.append(_bed_line(entry, peer))
    view["beds"] = beds
    view["lines"] = lines
    return view


def _counted_line(fields: dict[str, Any], view: dict[str, Any], clock: "GlobalClock") -> str:
    heard = view["heard"]
    parts = [f"{len(heard)} heard ({', '.join(f'bed {bed}' for bed in heard)})"]
    if view["stale"]:
        parts.append(f"{len(view['stale'])} silent, counted at their worst case ({_beds(view['stale'])})")
    unheard = view["unheard_beds"]
    declared = fields["program_beds"]
    if unheard:
        if "alone" in view["flags"]:
            until = "for as long as it hears no other bed (it cannot tell being alone from being cut off)"
        else:
            until = f"until {clock.clock(fields['join_until_us'])} (the join window)"
        parts.append(f"{unheard} never heard, reserved {until}: the program says beds = {declared}")
    elif declared > (known := len(heard) + len(view["stale"])) and fields["join_until_us"]:
        never = declared - known
        parts.append(
            f"{never} never heard counted out since {clock.clock(fields['join_until_us'])} "
            f"(the program says beds = {declared})"
        )
    if view["faulted"]:
        parts.append(f"faulted: {_beds(view['faulted'])} (counted at what they ask, 0 W while latched)")
    return f"Equal Rest: budget {fields['budget_w']} W; bed {fields['bed_id']} counts " + "; ".join(parts)


def _reason(
    fields: dict[str, Any],
    peer: dict[str, Any] | None,
    demand: int,
    is_fresh: bool,
    share: int,
    left: int,
    level: int | None,
    wanting: int,
    clock: "GlobalClock",
) -> str:
    worst = fields["worst_case_w"]
    if peer is not None and not is_fresh:
        return f"silent for {peer['age_ms'] / 1000:.0f} s: counted at its worst case, {worst} W"
    if peer is None and fields["share"] & ShareFlags.late:
        return (
            f"joined after the program's join window: it draws nothing until {clock.clock(fields['join_until_us'])}, "
            "so that every bed hears it first"
        )
    if peer is None and fields["share"] & ShareFlags.waiting:
        return "0 W: not every bed it hears has named it yet (it draws once all of them count it)"
    if peer is None and fields["counted_demand_w"] < fields["demand_w"]:
        note = f" (its raise to {fields['demand_w']} W counts once it has been on air for a few beacons)"
    else:
        note = ""
    wanted = min(max(demand, 0), worst)
    if not wanted:
        return "asks for nothing" + note
    if share >= wanted:
        return "met in full: the budget covers every demand" + note if level is None else "met in full" + note
    if not left:
        return "nothing is left of the budget once the beds not heard are reserved" + note
    return f"capped at the fair level, {level} W: the {left} W left shared by the {wanting} beds wanting more" + note


def _bed_line(entry: dict[str, Any], peer: dict[str, Any] | None) -> str:
    who = f"bed {entry['bed_id']}" + (" (this bed)" if peer is None else "")
    asks = f"asks {entry['demand_w']} W"
    if peer is None:
        return f"  {who}: {asks}, grant {entry['share_w']} W: {entry['reason']}"
    return (
        f"  {who}: {asks}, counted at {entry['counted_w']} W, its share here {entry['share_w']} W "
        f"(its own grant {entry['grant_w']} W): {entry['reason']}"
    )


def _beds(ids: list[int]) -> str:
    return ", ".join(f"bed {bed}" for bed in ids)
