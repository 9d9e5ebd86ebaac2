"""A sleep program on the wire: compiled to the values of the schema's ProgramData (a
program_upload's payload), read back, and the rules of an upload (which version, when it
starts)."""

from dataclasses import dataclass
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


def decide_upload(
    program: Program, status: dict[str, Any], start_in_s: int, version: int | None = None
) -> UploadDecision:
    """Which version to upload as, and when the program starts, from the bed's
    sanctuary_status fields (global_time_us, program_id, program_version).

    The version is `version`, else the file's, else the bed's current one + 1. In the
    sanctuary the newest version wins (then the higher id), so one that would not win
    over the bed's current program would never spread: refused."""
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
    return UploadDecision(chosen, status["global_time_us"] + start_in_s * 1_000_000)
