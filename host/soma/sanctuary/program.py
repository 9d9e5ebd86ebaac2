"""Sleep program files: a program file (TOML, or JSON by the .json extension) loaded into a
validated Program. soma.sanctuary.program_wire compiles it to the schema's ProgramData and
decides an upload; soma.sanctuary.program_show describes it for people.

    program = load("night.toml")
    values = compile_program(program, version=3, start_us=global_time_us)  # program_wire
    Console().print(describe(values, program.name))  # program_show

The file (every key below; any other key is an error):

    id = 7                  # program id, 1..65535
    version = 3             # optional, 1..65535; `soma program upload` picks one otherwise
    name = "night"          # optional, host-side only (not sent)
    duration = "8h"         # the whole program, from its start
    budget_w = 600          # optional Equal Rest budget of the sanctuary, W (0 or absent: the beds' configuration)
    beds = 8                # optional, beds in the sanctuary, 1..255 (default 1)

    [[phase]]               # 0..16 phases in strictly increasing `at`, all before the
                            # ushering's earliest start (its `at` minus its smart window)
    at = "0m"               # from the program's start
    pad = 33.5              # absolute set point, degC 13..40; or "off"
    pad_offset = -1.5       # or: offset from the sleeper's comfort profile, degC -10..+10
                            # (neither: the pads keep what was set before)
    light = 20              # perceived brightness, percent 0..100, reached at the end of the ramp
                            # (absent: the light keeps its course: the level the phases before
                            # set, off before the first phase)
    light_ramp = "10m"      # optional, default 0s, at most 65535 s; only with `light`
    haptic = "off"          # optional: "off" (default), "pulse" or "wave"

    [ushering]              # Wake-Dream Ushering: required
    at = "7h40m"            # the deadline (the latest start), before `duration`
    smart_window = "30m"    # optional, default 0s (exactly at `at`): start earlier, within this
                            # window, when most occupied beds sleep lightly or move; at most `at`
    ramp = "10m"            # optional light ramp, default 0s, at most 65535 s
    light = 100             # optional, percent 0..100, default 100
    pad = 34 | "off"        # optional, or pad_offset = 1.0, as in phases (neither: keep)
    haptic = "pulse"        # optional, default "off"

Durations are whole seconds (an integer) or text of hours, minutes and seconds in that
order: "90s", "45m", "7h30m", "1h5s". Temperatures are degC (integers or decimals). The
start of the program (global time) is not in the file: it is given at upload.

Every problem is a ProgramError: one line naming the file, the place and the key.
"""

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from soma.errors import SomaError
from soma.files import read_document
from soma_protocol import schema
from soma_protocol.enums import HapticPattern, PadMode

PAD_MODES = {mode.name: int(mode) for mode in PadMode}
HAPTICS = {pattern.name: int(pattern) for pattern in HapticPattern}

ID_RANGE = (1, 0xFFFF)  # id 0 is a bed without a program
VERSION_RANGE = (1, 0xFFFF)
PAD_RANGE_C = (schema.SETPOINT_MIN_MC / 1000, schema.SETPOINT_MAX_MC / 1000)  # the firmware refuses others
PAD_OFFSET_RANGE_C = (-10.0, 10.0)
BEDS_RANGE = (1, 0xFF)
U16 = 0xFFFF
U32 = 0xFFFF_FFFF

TOP_KEYS = ("id", "version", "name", "duration", "budget_w", "beds", "phase", "ushering")
PHASE_KEYS = ("at", "pad", "pad_offset", "light", "light_ramp", "haptic")
USHERING_KEYS = ("at", "smart_window", "ramp", "light", "pad", "pad_offset", "haptic")

_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


class ProgramError(SomaError):
    """A program file that cannot be used: the message says where and why."""


@dataclass(frozen=True)
class Phase:
    at_s: int
    pad_mode: str  # PadMode name
    pad_mc: int  # set point or offset, millidegrees (0 for keep and off)
    light_permille: int | None  # None: keep the light's course
    light_ramp_s: int
    haptic: str  # HapticPattern name


@dataclass(frozen=True)
class Ushering:
    at_s: int
    smart_window_s: int
    ramp_s: int
    light_permille: int
    pad_mode: str
    pad_mc: int
    haptic: str


@dataclass(frozen=True)
class Program:
    id: int
    version: int | None  # None: chosen at upload
    name: str
    duration_s: int
    budget_w: int
    beds: int
    ushering: Ushering
    phases: tuple[Phase, ...] = field(default=())
    path: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- loading --------------------------------------------------------------------------


def load(path: str | Path) -> Program:
    """Read (up to DOCUMENT_MAX_BYTES) and validate a program file (.toml or .json);
    return a Program."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ProgramError(f"{path}: unknown program file type {suffix or '(none)'!r} (use .toml or .json)")
    data = read_document(path, "program", ProgramError)
    return from_data(data, str(path))


def from_data(data: Any, where: str = "program") -> Program:
    """Validate a program's data (the file's tables as dicts); return a Program."""
    if not isinstance(data, dict):
        raise ProgramError(f"{where}: not a table of keys (a program is id, duration, [[phase]], [ushering])")
    _no_unknown(data, TOP_KEYS, where)
    for key in ("id", "duration", "ushering"):
        if key not in data:
            raise ProgramError(f"{where}: {key} missing")
    program_id = _integer(data, "id", where, *ID_RANGE)
    version = _integer(data, "version", where, *VERSION_RANGE) if "version" in data else None
    name = data.get("name", "")
    if not isinstance(name, str):
        raise ProgramError(f"{where}: name must be text")
    duration_s = _duration(data, "duration", where, 1, schema.PROGRAM_DURATION_MAX_S)  # longer: refused
    budget_w = _integer(data, "budget_w", where, 0, U16) if "budget_w" in data else 0
    beds = _integer(data, "beds", where, *BEDS_RANGE) if "beds" in data else 1
    ushering = _ushering(data["ushering"], f"{where}: ushering", duration_s)

    raw_phases = data.get("phase", [])
    if not isinstance(raw_phases, list):
        raise ProgramError(f"{where}: phase must be a list of tables ([[phase]])")
    if len(raw_phases) > schema.PROGRAM_PHASES_MAX:
        raise ProgramError(f"{where}: {len(raw_phases)} phases, at most {schema.PROGRAM_PHASES_MAX}")
    phases: list[Phase] = []
    ushering_from_s = ushering.at_s - ushering.smart_window_s
    for number, raw in enumerate(raw_phases, 1):
        phase = _phase(raw, f"{where}: phase {number}")
        if phases and phase.at_s <= phases[-1].at_s:
            raise ProgramError(
                f"{where}: phase {number}: at {format_duration(phase.at_s)} is not after phase {number - 1}'s "
                f"{format_duration(phases[-1].at_s)} (phases go in time order)"
            )
        if phase.at_s >= duration_s:
            raise ProgramError(
                f"{where}: phase {number}: at {format_duration(phase.at_s)} is not before the end "
                f"(duration {format_duration(duration_s)})"
            )
        # From the ushering's earliest start on, the ushering drives the outputs: a phase
        # there would fight it on some nights and not on others.
        if phase.at_s >= ushering_from_s:
            raise ProgramError(
                f"{where}: phase {number}: at {format_duration(phase.at_s)} is not before the ushering's "
                f"earliest start {format_duration(ushering_from_s)}"
            )
        phases.append(phase)
    return Program(program_id, version, name, duration_s, budget_w, beds, ushering, tuple(phases), where)


def _timed_table(raw: Any, keys: tuple[str, ...], where: str, what: str) -> int:
    """The `at` (s) of a phase or ushering table, once it is a table of known keys."""
    if not isinstance(raw, dict):
        raise ProgramError(f"{where}: not a table{what}")
    _no_unknown(raw, keys, where)
    if "at" not in raw:
        raise ProgramError(f"{where}: at missing")
    return _duration(raw, "at", where, 0, U32)


def _phase(raw: dict[str, Any], where: str) -> Phase:
    at_s = _timed_table(raw, PHASE_KEYS, where, "")
    where = f"{where} (at {format_duration(at_s)})"
    pad_mode, pad_mc = _pad(raw, where)
    light = _percent(raw, "light", where) if "light" in raw else None
    if "light_ramp" in raw and light is None:
        raise ProgramError(f"{where}: light_ramp without light (a ramp needs the level it reaches)")
    light_ramp_s = _duration(raw, "light_ramp", where, 0, U16) if "light_ramp" in raw else 0
    return Phase(at_s, pad_mode, pad_mc, light, light_ramp_s, _haptic(raw, where))


def _ushering(raw: dict[str, Any], where: str, duration_s: int) -> Ushering:
    at_s = _timed_table(raw, USHERING_KEYS, where, " ([ushering])")
    if at_s >= duration_s:
        raise ProgramError(
            f"{where}: at {format_duration(at_s)} is not before the end (duration {format_duration(duration_s)})"
        )
    window_s = _duration(raw, "smart_window", where, 0, U16) if "smart_window" in raw else 0
    if window_s > at_s:
        raise ProgramError(
            f"{where}: smart_window {format_duration(window_s)} is longer than at {format_duration(at_s)}"
            " (the window ends at `at` and cannot start before the program)"
        )
    ramp_s = _duration(raw, "ramp", where, 0, U16) if "ramp" in raw else 0
    light = _percent(raw, "light", where) if "light" in raw else 1000
    pad_mode, pad_mc = _pad(raw, where)
    return Ushering(at_s, window_s, ramp_s, light, pad_mode, pad_mc, _haptic(raw, where))


def _no_unknown(data: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = set(data) - set(known)
    if unknown:
        raise ProgramError(f"{where}: unknown keys {', '.join(sorted(unknown))} (known: {', '.join(known)})")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer(data: dict[str, Any], key: str, where: str, low: int, high: int) -> int:
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ProgramError(f"{where}: {key} {value!r} must be a whole number {low}..{high}")
    return value


def parse_duration(value: Any) -> int:
    """Seconds from a duration: whole seconds, or text like "90s", "45m", "7h30m". ValueError if not one."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _DURATION.fullmatch(value) if isinstance(value, str) and value else None
    if match is None:
        raise ValueError(f'{value!r} is not a duration (like "90s", "45m", "7h30m" or whole seconds)')
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _duration(data: dict[str, Any], key: str, where: str, low_s: int, high_s: int) -> int:
    try:
        seconds = parse_duration(data[key])
    except ValueError as exc:
        raise ProgramError(f"{where}: {key} {exc}") from None
    if not low_s <= seconds <= high_s:
        raise ProgramError(f"{where}: {key} {data[key]!r} must be {format_duration(low_s)}..{format_duration(high_s)}")
    return seconds


def _percent(data: dict[str, Any], key: str, where: str) -> int:
    value = data[key]
    if not _is_number(value) or not 0 <= value <= 100:
        raise ProgramError(f"{where}: {key} {value!r} must be a percentage 0..100")
    return round(value * 10)


def _pad(data: dict[str, Any], where: str) -> tuple[str, int]:
    """(PadMode name, millidegrees) from `pad` / `pad_offset`."""
    if "pad" in data and "pad_offset" in data:
        raise ProgramError(f"{where}: both pad and pad_offset (give one: an absolute set point or an offset)")
    if "pad_offset" in data:
        return "comfort_offset", _degrees(data, "pad_offset", where, PAD_OFFSET_RANGE_C)
    if "pad" not in data:
        return "keep", 0
    if data["pad"] == "off":
        return "off", 0
    return "absolute", _degrees(data, "pad", where, PAD_RANGE_C)


def _degrees(data: dict[str, Any], key: str, where: str, limits: tuple[float, float]) -> int:
    value = data[key]
    low, high = limits
    if not _is_number(value) or not low <= value <= high:
        expected = f'{low:g}..{high:g} degC or "off"' if key == "pad" else f"{low:+g}..{high:+g} degC"
        raise ProgramError(f"{where}: {key} {value!r} must be {expected}")
    return round(value * 1000)


def _haptic(data: dict[str, Any], where: str) -> str:
    value = data.get("haptic", "off")
    if value not in HAPTICS:
        raise ProgramError(f"{where}: haptic {value!r} must be one of {', '.join(HAPTICS)}")
    return value


def format_duration(seconds: float) -> str:
    """Seconds as the file writes them: 0s, 90 -> 1m30s, 27600 -> 7h40m."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{amount}{unit}" for amount, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if amount)
    return text or "0s"
