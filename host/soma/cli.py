"""`soma`: a table of subcommands over one transport; each module is imported only when run.

Exit status: 0 success, 1 a unit or check failed, 2 usage, input or connection error.
"""

import importlib
import sys
from typing import Any, NoReturn

import click

from soma.errors import SomaError

# name -> ("module" defining `command`, or "module:attribute"; one-line help shown without importing it)
COMMANDS = {
    "bench": ("soma.commands.bench", "Bench-test a unit with a declarative plan; JUnit XML and JSON reports."),
    "calibrate": ("soma.commands.calibrate", "Calibrate a unit's thermistors in the calibration bath."),
    "decode": ("soma.commands.decode", "Decode a beacon, management frame or record from hex."),
    "flash": ("soma.commands.flash", "Install firmware: diff, compressed, verified, atomic, with rollback."),
    "faults": ("soma.commands.faults", "List a unit's latched safety faults; clear those whose cause has gone."),
    "info": ("soma.commands.info", "Show a unit's identity, versions, calibration and faults."),
    "monitor": ("soma.commands.monitor", "Watch a unit's live telemetry and events."),
    "units": ("soma.commands.units:units", "List the units in the traceability records."),
    "history": ("soma.commands.units:history", "Show one unit's recorded flashes, calibrations and bench runs."),
    "ports": ("soma.commands.ports", "List serial ports and which are Soma units or blank MicroPython boards."),
    "provision": ("soma.commands.provision", "Give a unit its sanctuary key and bed id (key never printed)."),
    "program": ("soma.commands.program", "Check a sleep program file; upload it to a bed of a sanctuary."),
    "sanctuary": ("soma.commands.sanctuary", "Show what a bed knows of its sanctuary: sync, program, power, peers."),
    "demo": ("soma.commands.demo", "A night in a sanctuary of virtual beds, end to end, with a report."),
    "replay": ("soma.commands.replay", "Run a raw bed-sensor recording through the firmware's sensing pipeline."),
    "tour": ("soma.commands.tour", "Show the protocol end to end: host and firmware codecs side by side."),
    "sim": ("soma.commands.sim", "Run virtual beds on pseudo-terminals; inject faults; stop them."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, _, attribute = entry[0].partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute or "command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    # Any: click.Group.invoke returns whatever the subcommand's callback returns.
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SomaError as exc:
            click.echo(f"soma: error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="soma")
def cli() -> None:
    """Flash, calibrate, bench-test and simulate Soma sleep-bed controllers."""


def main() -> NoReturn:
    sys.exit(cli())


if __name__ == "__main__":
    main()
