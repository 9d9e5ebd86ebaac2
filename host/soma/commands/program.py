"""soma program: check a sleep program file, and upload it to one bed of a sanctuary."""

import json
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from soma.link.management import ManagementClient
    from soma.sanctuary.program import Program

EPILOG = """\b
Examples:
  soma program show examples/programs/night.toml
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


@click.group(epilog=EPILOG)
def command() -> None:
    """Sleep programs: phases on the sanctuary's clock, ending with the Wake-Dream Ushering.
    The file format is described in `soma program show --help`."""


@command.command(epilog=EPILOG)
@click.argument("program_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the program and its ProgramData as JSON.")
def show(program_file: str, as_json: bool) -> None:
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
        click.echo(json.dumps(document))
        return
    from rich.console import Console

    Console().print(describe(values, program.name))


@command.command(epilog=EPILOG)
@click.option("--port", required=True, help="Serial port of any one bed of the sanctuary.")
@click.argument("program_file", type=click.Path(dir_okay=False))
@click.option(
    "--start-in", "start_in_s", type=Duration(), default="0s", show_default=True, help="Start this long from now."
)
@click.option(
    "--version",
    type=click.IntRange(1, 0xFFFF),
    help="Version to upload as (default: the file's, else the bed's current version + 1).",
)
@click.option("--baud", default=115200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def upload(port: str, program_file: str, start_in_s: int, version: int | None, baud: int, as_json: bool) -> None:
    """Upload a program to one bed: it starts `--start-in` from now on the sanctuary's global
    clock, and spreads to the other beds by radio (the newest version wins)."""
    from soma.link.session import open_unit
    from soma.sanctuary.program import format_duration, load
    from soma.sanctuary.status import format_global_time

    program = load(program_file)  # a bad file fails before the port is opened
    with open_unit(port, baud) as unit:
        result = upload_program(unit.client, program, start_in_s, version)
    if as_json:
        click.echo(json.dumps({"port": port, "file": program_file, **result}))
        return
    start = format_global_time(result["start_us"])
    when = f"in {format_duration(start_in_s)}" if start_in_s else "now"
    click.echo(
        f"program {result['program_id']} v{result['version']} uploaded to {port}; it starts at global time "
        f"{start} ({when}); it spreads to the other beds by radio"
    )
    if not result["synced"]:
        click.echo(
            f"note: {port} is not synchronised with a sanctuary yet: the start is on its own clock until it is",
            err=True,
        )


def upload_program(
    client: "ManagementClient", program: "Program", start_in_s: int, version: int | None = None
) -> dict[str, Any]:
    """Read the bed's sanctuary status, decide the version and start, upload; return a summary.
    `client` is a ManagementClient (request, request_fields)."""
    from soma.sanctuary.program import ProgramError
    from soma.sanctuary.program_wire import compile_program, decide_upload
    from soma.sanctuary.status import is_synced, read_status

    status = read_status(client)
    decision = decide_upload(program, status, start_in_s, version)
    values = compile_program(program, decision.version, decision.start_us)
    program_id, stored_version = client.request("program_upload", values, timeout=UPLOAD_TIMEOUT_S)
    if (program_id, stored_version) != (program.id, decision.version):
        raise ProgramError(
            f"the bed answered program {program_id} v{stored_version} to the upload of "
            f"program {program.id} v{decision.version}"
        )
    return {
        "program_id": program_id,
        "version": stored_version,
        "start_us": decision.start_us,
        "global_time_us": status["global_time_us"],
        "replaced": {"program_id": status["program_id"], "version": status["program_version"]}
        if status["program_id"]
        else None,
        "synced": is_synced(status["flags"]),
    }
