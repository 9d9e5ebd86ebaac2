"""A unit's telemetry and events in human terms, as `soma monitor` shows them: °C, %, W, A,
bpm, breaths a minute, faults and states by name, the bed a unit is. The wire's own fields
and units are `codec.render("telemetry", values)` (`soma monitor --json`).

    fields = codec.nest("telemetry", values)
    for label, text in telemetry_rows(fields): ...
    bed_title(info, port)          # "bed 2 of sanctuary 7 · unit 5c0ae80e87e8 · /dev/pts/1"
    restart_notice(cause)          # "unit restarted (cause power_on): telemetry resumed"
"""

from collections.abc import Mapping
from enum import IntEnum
from typing import Any

from soma.link.management import fault_names
from soma_protocol.constants import DRIVE_FULL_POWER_W, NO_ROOT
from soma_protocol.enums import (
    AutotuneState,
    BeaconFlags,
    Occupancy,
    OutputChannel,
    ResetCause,
    SleepState,
    VitalsValid,
)

# Occupancy as the schema defines it (0 unknown, 1 empty, 2 occupied): 1 is an empty bed.
OCCUPANCY_WORDS = {Occupancy.unknown: "not known yet", Occupancy.empty: "empty", Occupancy.occupied: "in bed"}
SYNC_STATES = (BeaconFlags.program_running, BeaconFlags.ushering)  # named after synced and the root
NOT_VALID = "-"  # a rate the firmware was not confident of (or the sleeper moved)
# Field values are the codec's decoded values (ints, lists), by field name: `Any`.
Fields = Mapping[str, Any]


def _celsius(millidegrees: int) -> str:
    return f"{millidegrees / 1000:.2f} °C"


def _name(enum: type[IntEnum], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return str(value)  # a newer firmware's value


def reset_cause_name(cause: int) -> str:
    return _name(ResetCause, cause)


def _pad(fields: Fields, zone: str) -> str:
    target = fields[f"setpoint_{zone}_mc"]
    set_point = f"set {_celsius(target)}" if target else "off"
    return f"{_celsius(fields[f'pad_{zone}_mc'])}  ({set_point})"


def _drive(fields: Fields, zone: str) -> str:
    """Drive in percent (negative: cooling), the power it asks of the supply as the firmware
    counts it for Equal Rest (full drive: DRIVE_FULL_POWER_W), and the heater current measured."""
    permille = fields[f"drive_{zone}_permille"]
    watts = abs(permille) * DRIVE_FULL_POWER_W / 1000
    cooling = "  cooling" if permille < 0 else ""
    return f"{permille / 10:.1f} %  {watts:.0f} W  {fields[f'current_{zone}_ma'] / 1000:.2f} A{cooling}"


def _outputs(fields: Fields) -> str:
    levels = fields["outputs_permille"]
    shown = [channel for channel in OutputChannel if not channel.name.startswith("drive_")]
    return "  ".join(f"{channel.name.replace('_', ' ')} {levels[channel] / 10:.0f} %" for channel in shown)


def _rate(fields: Fields, name: str, valid: VitalsValid, unit: str) -> str:
    return f"{fields[name] / 10:.1f} {unit}" if fields["vitals_valid"] & valid else NOT_VALID


def _sync(fields: Fields) -> str:
    flags, root = fields["sync_flags"], fields["sync_root_id"]
    if flags & BeaconFlags.is_root:
        state = "root (the others follow its clock)"
    elif root == NO_ROOT:
        state = "no root heard yet"
    else:
        state = f"follows root bed {root}"
    words = ["synced" if flags & BeaconFlags.synced else "not synced", state]
    words += [str(flag.name).replace("_", " ") for flag in SYNC_STATES if flags & flag]
    return ", ".join(words)


def _sleeper(fields: Fields) -> str:
    heart = _rate(fields, "heart_bpm_x10", VitalsValid.heart, "bpm")
    breathing = _rate(fields, "breaths_per_min_x10", VitalsValid.breathing, "/min")
    sleep = _name(SleepState, fields["sleep_state"])
    return f"{sleep} · heart {heart} · breathing {breathing} · moved {fields['movement_s']} s of the last 30"


def telemetry_rows(fields: Fields) -> list[tuple[str, str]]:
    """(label, text) rows of one telemetry frame's fields (codec.nest), in human units: few
    enough, with the monitor's events, for a 24-line terminal."""
    faults = fault_names(fields["fault_mask"])
    return [
        ("left pad", _pad(fields, "left")),
        ("right pad", _pad(fields, "right")),
        ("ambient", _celsius(fields["ambient_mc"])),
        ("left drive", _drive(fields, "left")),
        ("right drive", _drive(fields, "right")),
        ("heater relay", "closed" if fields["heater_enable"] else "open (heating cut off)"),
        ("outputs", _outputs(fields)),
        ("faults", ", ".join(faults) if faults else "none"),
        ("occupancy", OCCUPANCY_WORDS.get(fields["occupancy"], str(fields["occupancy"]))),
        ("sleeper", _sleeper(fields)),
        ("sync", f"{_sync(fields)} · global time {fields['global_time_us'] / 1e6:.3f} s"),
        (
            "unit",
            f"up {fields['uptime_ms'] / 1000:.1f} s · {fields['tick_overruns']} loop overruns · "
            f"heap {fields['heap_used_bytes'] / 1024:.1f} KiB used",
        ),
    ]


def bed_title(info: Fields, port: str) -> str:
    """Which bed this is: its bed id and sanctuary (or not provisioned), serial and port,
    from the unit's info fields (codec.nest)."""
    serial = bytes(info["unit_serial"]).decode(errors="replace")
    bed = f"bed {info['bed_id']} of sanctuary {info['sanctuary_id']}" if info["bed_id"] else "not provisioned"
    return f"{bed} · unit {serial} · {port}"


def restart_notice(cause: int) -> str:
    """The line shown when the unit restarted under the monitor and streams again."""
    return f"unit restarted (cause {reset_cause_name(cause)}): telemetry resumed"


def event_text(name: str, values: Fields) -> str:
    """An event frame (codec.nest fields) as a line: faults and causes by name."""
    if name == "fault_event":
        (fault,) = fault_names(1 << values["code"]) or [str(values["code"])]
        state = "latched" if values["active"] else "cleared"
        return f"fault {fault} {state} (value {values['value']}, at uptime {values['uptime_ms'] / 1000:.1f} s)"
    if name == "boot_event":
        return f"boot {values['boot_epoch']} (cause {reset_cause_name(values['reset_cause'])})"
    if name == "autotune_event":
        zone = ("left", "right")[values["zone"]] if values["zone"] < 2 else str(values["zone"])
        return f"autotune of the {zone} zone {_name(AutotuneState, values['state'])}, {values['peaks']} peaks"
    return f"{name} {dict(values)}"
