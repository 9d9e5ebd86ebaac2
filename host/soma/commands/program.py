"""soma program: check a sleep program file, and upload it to one bed of a sanctuary."""

import json
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from datetime import datetime

    from soma.link.management import ManagementClient
    from soma.sanctuary.program import Program

EPILOG = """\b
Examples:
  soma program show examples/programs/night.toml --start-at 22:30
  soma program upload --port /dev/pts/7 --start-at 22:30 examples/programs/night.toml
  soma program upload --port /dev/pts/7 --start-in 10m examples/programs/night.toml
  soma program upload --port /dev/pts/7 --version 4 --json examples/programs/short.json
"""

UPLOAD_TIMEOUT_S = 5  # the bed writes the program record to flash before it answers


class Duration(click.ParamType):
    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        from soma.sanctuary.program import parse_duration

        try:
            return parse_duration(int(value) if isinstance(value, str) and value.isdigit() else value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class StartAt(click.ParamType):
    """--start-at: a clock time (its next occurrence) or an ISO date and time, in this host's
    time zone unless it names one."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> "datetime":
        from datetime import datetime

        from soma.sanctuary.program_wire import parse_start_at

        if isinstance(value, datetime):
            return value
        try:
            return parse_start_at(str(value), datetime.now().astimezone())
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


START_AT_HELP = (
    'Start at this clock time: "22:30" (its next occurrence) or "2026-12-24T22:30", in this host\'s time zone.'
)


@click.group(epilog=EPILOG)
def command() -> None:
    """Sleep programs: phases on the sanctuary's clock, ending with the Wake-Dream Ushering.
    The file format is described in `soma program show --help`."""


@command.command(epilog=EPILOG)
@click.argument("program_file", type=click.Path(dir_okay=False))
@click.option("--start-at", "start_at", type=StartAt(), help=START_AT_HELP + " Shows each phase's clock time.")
@click.option("--json", "as_json", is_flag=True, help="Print the program and its ProgramData as JSON.")
def show(program_file: str, start_at: "datetime | None", as_json: bool) -> None:
    """Check a program file (TOML, or JSON by its .json extension) and show what a bed would
    run: its phases (time from the start, pads, light, haptics), the ushering and the power
    budget. Keys: id, version, name, duration, budget_w, beds, [[phase]] (at, pad |
    pad_offset, light, light_ramp, haptic), [ushering] (at, smart_window, ramp, light, pad |
    pad_offset, haptic); durations like "90s", "45m", "7h30m"."""
    from soma.sanctuary.program import load
    from soma.sanctuary.program_show import describe
    from soma.sanctuary.program_wire import PAYLOAD, PHASE, compile_program
    from soma_protocol import codec, schema

    program = load(program_file)
    values = compile_program(program, program.version or 0)
    if as_json:
        data = codec.render(PAYLOAD, values)
        size = schema.ProgramPhase.sizeof()
        blob = values[-1]
        data["phases"] = [
            codec.render(PHASE, codec.decode(PHASE, blob[at : at + size])) for at in range(0, len(blob), size)
        ]
        document = {**program.as_dict(), "program_data": data}
        if start_at is not None:
            document["start_at"] = start_at.isoformat(timespec="seconds")
        click.echo(json.dumps(document))
        return
    from rich.console import Console

    Console().print(describe(values, program.name, start_at))


@command.command(epilog=EPILOG)
@click.option("--port", required=True, help="Serial port of any one bed of the sanctuary.")
@click.argument("program_file", type=click.Path(dir_okay=False))
@click.option("--start-in", "start_in_s", type=Duration(), help="Start this long from now (default: now).")
@click.option("--start-at", "start_at", type=StartAt(), help=START_AT_HELP)
@click.option(
    "--version",
    type=click.IntRange(1, 0xFFFF),
    help="Version to upload as (default: the file's, else the bed's current version + 1).",
)
@click.option(
    "--beds",
    type=click.IntRange(1, 0xFF),
    help="Beds in the sanctuary (default: the file's `beds`); never fewer than the bed hears.",
)
@click.option("--baud", default=115200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def upload(
    port: str,
    program_file: str,
    start_in_s: int | None,
    start_at: "datetime | None",
    version: int | None,
    beds: int | None,
    baud: int,
    as_json: bool,
) -> None:
    """Upload a program to one bed: it starts `--start-at` a clock time or `--start-in` from
    now, mapped onto the sanctuary's global clock, and spreads to the other beds by radio (the
    newest version wins). Its bed count is checked against the beds the bed hears."""
    from datetime import datetime

    from soma.link.session import open_unit
    from soma.sanctuary.clock import format_clock
    from soma.sanctuary.program import format_duration, load

    if start_in_s is not None and start_at is not None:
        raise click.UsageError("give --start-in or --start-at, not both")
    program = load(program_file)  # a bad file fails before the port is opened
    with open_unit(port, baud) as unit:
        result = upload_program(unit.client, program, start_in_s or 0, version, start_at, beds)
    if as_json:  # its notes are in it
        click.echo(json.dumps({"port": port, "file": program_file, **result}))
        return
    starts = datetime.fromisoformat(result["start_at"])
    now = datetime.fromisoformat(result["read_at"])
    when = f"in {format_duration(round((starts - now).total_seconds()))}" if starts > now else "now"
    click.echo(
        f"program {result['program_id']} v{result['version']} uploaded to {port}; it starts at "
        f"{format_clock(starts, now)} ({when}; global time {result['start_us'] / 1e6:.3f} s); "
        "it spreads to the other beds by radio"
    )
    for note in result["notes"]:
        click.echo(f"note: {note}", err=True)
    if not result["synced"]:
        click.echo(
            f"note: {port} is not synchronised with a sanctuary yet: the start is on its own clock until it is",
            err=True,
        )


def upload_program(
    client: "ManagementClient",
    program: "Program",
    start_in_s: int,
    version: int | None = None,
    start_at: "datetime | None" = None,
    beds: int | None = None,
) -> dict[str, Any]:
    """Read the bed's sanctuary status, decide the version, start and bed count, upload;
    return a summary. `client` is a ManagementClient (request, request_fields)."""
    from dataclasses import replace

    from soma.sanctuary.clock import GlobalClock
    from soma.sanctuary.program import ProgramError
    from soma.sanctuary.program_wire import compile_program, decide_upload
    from soma.sanctuary.status import is_synced, read_status

    status = read_status(client)
    decision = decide_upload(program, status, start_in_s, version, start_at, beds)
    values = compile_program(replace(program, beds=decision.beds), decision.version, decision.start_us)
    program_id, stored_version = client.request("program_upload", values, timeout=UPLOAD_TIMEOUT_S)
    if (program_id, stored_version) != (program.id, decision.version):
        raise ProgramError(
            f"the bed answered program {program_id} v{stored_version} to the upload of "
            f"program {program.id} v{decision.version}"
        )
    clock = GlobalClock(status["global_time_us"], status["host_time_s"])
    return {
        "program_id": program_id,
        "version": stored_version,
        "start_us": decision.start_us,
        "start_at": clock.iso(decision.start_us),
        "global_time_us": status["global_time_us"],
        "read_at": clock.iso(status["global_time_us"]),
        "beds": decision.beds,
        "notes": decision.notes,
        "replaced": {"program_id": status["program_id"], "version": status["program_version"]}
        if status["program_id"]
        else None,
        "synced": is_synced(status["flags"]),
    }
