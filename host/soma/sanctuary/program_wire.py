"""A sleep program on the wire: compiled to the values of the schema's ProgramData (a
program_upload's payload), read back, and the rules of an upload (which version, when it
starts)."""

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from soma.sanctuary.program import HAPTICS, PAD_MODES, VERSION_RANGE, Program, ProgramError
from soma_protocol import codec, schema

PAYLOAD = "program_data"  # the payload of a program_upload request: ProgramData
PHASE = "program_phase"  # its phases, packed back to back


def compile_program(program: Program, version: int, start_us: int = 0) -> list[Any]:
    """The flat value list of ProgramData (program_upload's request payload, in wire order).

    A phase without `light` keeps the light's course: it repeats the level before it with
    what is left of that level's ramp, so the light reaches it at the same instant as if
    the phase were not there."""
    phases: list[dict[str, Any]] = []
    level, ramp_end_s = 0, 0
    for phase in program.phases:
        if phase.light_permille is None:
            light, ramp_s = level, max(0, ramp_end_s - phase.at_s)
        else:
            light, ramp_s = phase.light_permille, phase.light_ramp_s
        level, ramp_end_s = light, phase.at_s + ramp_s
        phases.append(_phase_fields(phase.at_s, phase.pad_mode, phase.pad_mc, light, ramp_s, phase.haptic))
    ushering = program.ushering
    fields = {
        "program_id": program.id,
        "version": version,
        "start_us": start_us,
        "duration_s": program.duration_s,
        "budget_w": program.budget_w,
        "beds": program.beds,
        "wake_at_s": ushering.at_s,
        "smart_window_s": ushering.smart_window_s,
        "ushering_ramp_s": ushering.ramp_s,
        "ushering_light_permille": ushering.light_permille,
        "ushering_pad_mode": PAD_MODES[ushering.pad_mode],
        "ushering_pad_mc": ushering.pad_mc,
        "ushering_haptic": HAPTICS[ushering.haptic],
        # ProgramPhase records back to back: the bed reads them one at a time
        "phases": b"".join(codec.encode(PHASE, codec.values_of(PHASE, fields)) for fields in phases),
    }
    values = codec.values_of(PAYLOAD, fields)  # wire order comes from the schema
    try:
        codec.encode(PAYLOAD, values)
    except codec.ProtocolError as exc:
        raise ProgramError(f"{program.path}: does not fit the protocol's ProgramData: {exc}") from None
    return values


def program_data(values: list[Any]) -> dict[str, Any]:
    """ProgramData values as nested fields, the packed phases unpacked into a list."""
    data = codec.nest(PAYLOAD, values)
    blob, size = data["phases"], schema.ProgramPhase.sizeof()
    data["phases"] = [codec.nest(PHASE, codec.decode(PHASE, blob[at : at + size])) for at in range(0, len(blob), size)]
    return data


def _phase_fields(
    at_s: int, pad_mode: str, pad_mc: int, light_permille: int, light_ramp_s: int, haptic: str
) -> dict[str, Any]:
    return {
        "at_s": at_s,
        "pad_mode": PAD_MODES[pad_mode],
        "pad_mc": pad_mc,
        "light_permille": light_permille,
        "light_ramp_s": light_ramp_s,
        "haptic": HAPTICS[haptic],
    }


# ---- upload rules ------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadDecision:
    version: int
    start_us: int
    beds: int  # the count uploaded: the file's, --beds, or raised to the beds the bed hears
    notes: list[str] = field(default_factory=list[str])  # what people should know (one line each)


def decide_upload(
    program: Program,
    status: dict[str, Any],
    start_in_s: int = 0,
    version: int | None = None,
    start_at: datetime | None = None,
    beds: int | None = None,
) -> UploadDecision:
    """Which version to upload as, when the program starts and how many beds it counts, from
    the bed's sanctuary_status fields (read_status: global_time_us, host_time_s,
    program_id, program_version, bed_id, peers, worst_case_w).

    The version is `version`, else the file's, else the bed's current one + 1. In the
    sanctuary the newest version wins (then the higher id), so one that would not win
    over the bed's current program would never spread: refused.

    The start is `start_at` (a wall-clock instant, mapped onto the global clock through the
    instant the bed read it) or `start_in_s` from the bed's now.

    The bed count is `beds`, else the file's; checked against the beds the bed hears
    (itself and its peers): fewer is raised to them (every bed heard is counted anyway),
    `beds` fewer is refused, more is kept with a note (the beds never heard are reserved at
    their worst case for the join window only)."""
    current_id, current_version = status["program_id"], status["program_version"]
    chosen = version if version is not None else program.version
    if chosen is None:
        chosen = current_version + 1 if current_id else 1
        if chosen > VERSION_RANGE[1]:
            raise ProgramError(
                f"the bed runs program {current_id} v{current_version}, the highest version: "
                "no newer version can be given"
            )
    if not VERSION_RANGE[0] <= chosen <= VERSION_RANGE[1]:
        raise ProgramError(f"version {chosen} must be {VERSION_RANGE[0]}..{VERSION_RANGE[1]}")
    if current_id and (chosen, program.id) <= (current_version, current_id):
        raise ProgramError(
            f"program {program.id} v{chosen} would not replace the bed's program {current_id} v{current_version}: "
            f"the newest version wins in the sanctuary, so it would never spread (give --version "
            f"{current_version + 1} or more)"
        )
    if start_at is None:
        start_us = status["global_time_us"] + start_in_s * 1_000_000
    else:
        from soma.sanctuary.clock import GlobalClock

        clock = GlobalClock(status["global_time_us"], status["host_time_s"])
        if start_at <= clock.host_time:
            raise ProgramError(f"--start-at {start_at.isoformat(timespec='seconds')} is in the past")
        start_us = clock.global_us(start_at)
    count, notes = fit_beds(program, status, beds)
    return UploadDecision(chosen, start_us, count, notes)


def fit_beds(program: Program, status: dict[str, Any], beds: int | None) -> tuple[int, list[str]]:
    """decide_upload's bed count and its notes."""
    heard = sorted([status["bed_id"]] + [peer["bed_id"] for peer in status["peers"]])
    names = ", ".join(str(bed) for bed in heard)
    hears = f"bed {status['bed_id']} hears {len(heard)} bed{'s' if len(heard) != 1 else ''} ({names})"
    if beds is not None and beds < len(heard):
        raise ProgramError(f"--beds {beds} is fewer than the sanctuary has: {hears}")
    count = program.beds if beds is None else beds
    if count < len(heard):
        return len(heard), [f"the program says beds = {count}, {hears}: uploaded with beds = {len(heard)}"]
    if count == len(heard) or not program.budget_w:
        return count, []
    never = count - len(heard)
    worst = status["worst_case_w"]
    said = f"the program says beds = {count}" if beds is None else f"--beds {count}"
    return count, [
        f"{said}, {hears}: the {never} never heard are reserved at {worst} W each "
        f"({never * worst} W of the {program.budget_w} W budget) until the join window ends, "
        f"then counted out (--beds {len(heard)} counts only the beds heard)"
    ]


def parse_start_at(text: str, now: datetime) -> datetime:
    """A program's start as people give it: a clock time "22:30" or "22:30:15" (its next
    occurrence after `now`, in now's time zone), or an ISO 8601 date and time
    ("2026-12-24T22:30", in now's time zone unless it names one). ValueError saying why."""
    try:
        clock = time.fromisoformat(text) if len(text) <= 8 else None
    except ValueError:
        clock = None
    if clock is not None:
        at = datetime.combine(now.date(), clock, tzinfo=now.tzinfo)
        return at if at > now else at + timedelta(days=1)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f'{text!r} is not a clock time ("22:30") or a date and time ("2026-12-24T22:30")') from None
    return at if at.tzinfo is not None else at.replace(tzinfo=now.tzinfo)
