"""`soma`: a table of subcommands over one transport; each module is imported only when run.

Exit status:
  0  success
  1  a unit or check failed, or the unit refused a request (its reason in words)
  2  usage, input or connection error: no such port, a busy port, permission denied,
     nothing answers, not a Soma unit, a blank unit, the firmware stopped at the REPL,
     a protocol mismatch, a missing optional driver, a file that cannot be read
  3  internal error (a bug): one line, or its traceback with --verbose

Every expected failure is one line `soma: error: ...` that names the fix, worded by its
cause in one table (soma.errors.CAUSES), the same in every command; the entry point
(LazyGroup.invoke) maps them, so no command has its own try/except for them.

Options take their defaults from the environment and a station file (soma.defaults):
command line > environment (SOMA_PORT, SOMA_DB, ...) > station file (--station-file FILE,
before or after the subcommand, or SOMA_STATION_FILE) > built-in default.

`--verbose` (before or after the subcommand: `soma --verbose info ...` or `soma info ...
--verbose`) logs the serial and management traffic to stderr, and shows an internal
error's traceback; `--log FILE` writes that log to FILE instead.
"""

import importlib
import sys
import traceback
from typing import Any, NoReturn, TextIO

import click

from soma import defaults
from soma.errors import expected, internal

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
    "ports": ("soma.commands.ports", "List serial ports and what answers: Soma units, blank boards, other devices."),
    "provision": ("soma.commands.provision", "Give a unit its sanctuary key and bed id (key never printed)."),
    "program": ("soma.commands.program", "Check a sleep program file; upload it to a bed of a sanctuary."),
    "sanctuary": ("soma.commands.sanctuary", "Show what a bed knows of its sanctuary: sync, program, power, peers."),
    "demo": ("soma.commands.demo", "A night in a sanctuary of virtual beds, end to end, with a report."),
    "replay": ("soma.commands.replay", "Run a raw bed-sensor recording through the firmware's sensing pipeline."),
    "tour": ("soma.commands.tour", "Show the protocol end to end: host and firmware codecs side by side."),
    "sim": ("soma.commands.sim", "Run virtual beds on pseudo-terminals; inject faults; stop them."),
    "station": (
        "soma.commands.station",
        "The production line: flash, calibrate, bench, provision and label units, resumable.",
    ),
}
# click >= 8.2 raises this (a UsageError) for a group run without a subcommand: it shows the help.
NO_ARGS_IS_HELP: type[Exception] = getattr(click.exceptions, "NoArgsIsHelpError", click.exceptions.Exit)
VERBOSE, LOGGED = "soma.verbose", "soma.log"  # ctx.meta keys: --verbose, --log FILE given
LOG_HELP = "Log the serial and management traffic to this file."
VERBOSE_HELP = "Log the serial and management traffic to stderr (or --log FILE); tracebacks of internal errors."


def _set_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.meta.get(VERBOSE):
        ctx.meta[VERBOSE] = True
        if not ctx.meta.get(LOGGED):  # --log already chose where the traffic goes
            _log_traffic_to(sys.stderr)


def _set_log(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None and not ctx.meta.get(LOGGED):
        try:
            stream = open(value, "a", buffering=1)  # noqa: SIM115 (open for the whole run)
        except OSError as exc:
            raise click.BadParameter(f"cannot write it: {exc.strerror}", ctx, param) from None
        ctx.meta[LOGGED] = True
        ctx.call_on_close(stream.close)
        _log_traffic_to(stream)


def _log_traffic_to(stream: TextIO) -> None:
    from soma.link import traffic

    traffic.configure(stream)


def _logging_options() -> list[click.Option]:
    """--verbose and --log, for the group and for every subcommand (given on either side)."""
    return [
        click.Option(["--verbose", "-v"], is_flag=True, expose_value=False, callback=_set_verbose, help=VERBOSE_HELP),
        click.Option(["--log"], metavar="FILE", expose_value=False, callback=_set_log, help=LOG_HELP),
    ]


def _with_common_options(command: click.Command) -> click.Command:
    """--verbose and --log, and the defaults of soma.defaults (environment, station file)."""
    _add_logging_options(command)
    defaults.apply(command)
    return command


def _add_logging_options(command: click.Command) -> None:
    names = {name for param in command.params for name in param.opts}
    if "--verbose" not in names:
        command.params.extend(_logging_options())
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _add_logging_options(sub)


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, _, attribute = entry[0].partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute or "command")
        return _with_common_options(command)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    # Any: click.Group.invoke returns whatever the subcommand's callback returns.
    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; an expected failure is one line and its exit status, a bug
        one line and exit 3 (its traceback with --verbose, and in the --log file)."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except click.ClickException as exc:  # bad usage: one line too, with where the usage is
            if isinstance(exc, NO_ARGS_IS_HELP):
                raise  # a group given no subcommand: its help, as click shows it
            message = exc.format_message().rstrip(".")
            if isinstance(exc, click.UsageError) and exc.ctx:
                message += f": see `{exc.ctx.command_path} --help`"
            click.echo(f"soma: error: {message}", err=True)
            ctx.exit(exc.exit_code)
        except Exception as exc:
            failure = expected(exc)
            if failure is None:
                failure = internal(exc)
                _report_bug(ctx, exc)
            click.echo(f"soma: error: {failure}", err=True)
            ctx.exit(failure.exit_code)


def _report_bug(ctx: click.Context, exc: Exception) -> None:
    text = "".join(traceback.format_exception(exc))
    if ctx.meta.get(VERBOSE):
        click.echo(text, err=True, nl=False)
    elif ctx.meta.get(LOGGED):
        from soma.link import traffic

        traffic.LOG.debug(text)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="soma")
@click.option("--verbose", "-v", is_flag=True, expose_value=False, callback=_set_verbose, help=VERBOSE_HELP)
@click.option("--log", metavar="FILE", expose_value=False, callback=_set_log, help=LOG_HELP)
@click.option(
    "--station-file",
    metavar="FILE",
    expose_value=False,
    callback=defaults.given_before_command,
    help=defaults.STATION_FILE_HELP,
)
def cli() -> None:
    """Flash, calibrate, bench-test and simulate Soma sleep-bed controllers."""


def main() -> NoReturn:
    sys.exit(cli())


if __name__ == "__main__":
    main()
