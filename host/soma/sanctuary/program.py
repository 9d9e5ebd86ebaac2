"""Sleep programs: a program file (TOML, or JSON by the .json extension) loaded into a
validated Program, compiled to the values of the schema's ProgramData, described for people.

    program = load("night.toml")
    values = compile_program(program, version=3, start_us=global_time_us)  # program_upload's payload
    Console().print(describe(values, program.name))

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

import json
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soma.errors import SomaError
from soma_protocol import codec, schema
from soma_protocol.enums import HapticPattern, PadMode

if TYPE_CHECKING:
    from rich.console import Group

PAYLOAD = "program_data"  # the payload of a program_upload request: ProgramData
PHASE = "program_phase"  # its phases, packed back to back
PAD_MODES = {mode.name: int(mode) for mode in PadMode}
HAPTICS = {pattern.name: int(pattern) for pattern in HapticPattern}
PAD_MODE_NAMES = {value: name for name, value in PAD_MODES.items()}
HAPTIC_NAMES = {value: name for name, value in HAPTICS.items()}

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
    """Read and validate a program file (.toml or .json); return a Program."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ProgramError(f"{path}: unknown program file type {suffix or '(none)'!r} (use .toml or .json)")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProgramError(f"{path}: cannot read the program: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ProgramError(f"{path}: not a text file") from None
    try:
        data = json.loads(text) if suffix == ".json" else tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProgramError(f"{path}: not a TOML file: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ProgramError(f"{path}: not a JSON file: {exc}") from None
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


# ---- compiling ---------------------------------------------------------------------------


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


# ---- for people --------------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    """Seconds as the file writes them: 0s, 90 -> 1m30s, 27600 -> 7h40m."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{amount}{unit}" for amount, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if amount)
    return text or "0s"


def format_pad(mode: int, mc: int) -> str:
    name = PAD_MODE_NAMES.get(mode, mode)
    if name == "absolute":
        return f"{mc / 1000:.1f} °C"
    if name == "comfort_offset":
        return f"comfort {mc / 1000:+.1f} °C"
    return str(name)


def format_light(permille: int, ramp_s: int) -> str:
    level = f"{permille / 10:g} %"
    return f"{level} over {format_duration(ramp_s)}" if ramp_s else level


def describe(values: list[Any], name: str = "") -> "Group":
    """A compiled program (ProgramData values) for people: a rich table of its phases, then
    the ushering and the sanctuary lines."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    data = program_data(values)
    version = f"v{data['version']}" if data["version"] else "(version chosen at upload)"
    title = f"program {data['program_id']} {version}" + (f" — {name}" if name else "")
    table = Table(title=f"{title}, {format_duration(data['duration_s'])}")
    for column in ("#", "at", "pad", "light", "haptic"):
        table.add_column(column)
    for number, phase in enumerate(data["phases"], 1):
        table.add_row(
            str(number),
            format_duration(phase["at_s"]),
            format_pad(phase["pad_mode"], phase["pad_mc"]),
            format_light(phase["light_permille"], phase["light_ramp_s"]),
            HAPTIC_NAMES.get(phase["haptic"], str(phase["haptic"])),
        )
    wake_at = format_duration(data["wake_at_s"])
    window = data["smart_window_s"]
    when = f"between {format_duration(data['wake_at_s'] - window)} and {wake_at} (smart window)" if window else wake_at
    ushering = (
        f"Wake-Dream Ushering {when}: light {format_light(data['ushering_light_permille'], data['ushering_ramp_s'])}, "
        f"pad {format_pad(data['ushering_pad_mode'], data['ushering_pad_mc'])}, "
        f"haptic {HAPTIC_NAMES.get(data['ushering_haptic'], data['ushering_haptic'])}"
    )
    budget = f"{data['budget_w']} W" if data["budget_w"] else "the beds' configured budget"
    beds = f"{data['beds']} bed" + ("s" if data["beds"] != 1 else "")
    return Group(table, Text(ushering), Text(f"Equal Rest: {budget} shared by {beds}"))
