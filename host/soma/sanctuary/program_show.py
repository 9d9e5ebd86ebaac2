"""A compiled sleep program described for people: its phases, the ushering and the
sanctuary lines, as a rich table."""

from typing import TYPE_CHECKING, Any

from soma.sanctuary.program import HAPTICS, PAD_MODES, format_duration
from soma.sanctuary.program_wire import program_data

if TYPE_CHECKING:
    from rich.console import Group

PAD_MODE_NAMES = {value: name for name, value in PAD_MODES.items()}
HAPTIC_NAMES = {value: name for name, value in HAPTICS.items()}


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
