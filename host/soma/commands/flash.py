"""soma flash: install the firmware on one or many units, in parallel."""

import json
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from textwrap import indent
from typing import TYPE_CHECKING, Any, Literal

import click

if TYPE_CHECKING:
    from soma.errors import SomaError
    from soma.station.flashing import FlashResult

ProgressFn = Callable[[int, int | None, str], Any]

EPILOG = """\b
Examples:
  soma flash --port /dev/ttyUSB0               first install or update one unit
  soma flash --port /dev/pts/7 --port /dev/pts/9   several units at once
  soma flash --port /dev/pts/7 --json          one JSON object per unit
"""


@click.command(epilog=EPILOG)
@click.option("--port", "ports", multiple=True, required=True, help="Serial port of a unit (repeatable).")
@click.option("--firmware", type=click.Path(file_okay=False, exists=True), help="Firmware tree (default: firmware/).")
@click.option("--baud", default=115200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per unit.")
@click.option("--db", help="Traceability database (URL or SQLite file; default: $SOMA_DB or the user's).")
@click.option("--station", help="This station's name in the records (default: the host name).")
@click.option("--operator", default="", help="Who runs the flash, for the records.")
def command(
    ports: tuple[str, ...],
    firmware: str | None,
    baud: int,
    as_json: bool,
    db: str | None,
    station: str | None,
    operator: str,
) -> None:
    """Compile, diff, send compressed, verify, switch atomically; wait for the new firmware
    to confirm itself, or report the unit's own rollback."""
    from soma.errors import SomaError, expected
    from soma.link.session import open_unit
    from soma.station.firmware_build import require_boot_loader
    from soma.station.flashing import Image
    from soma.station.line import flash_recorded
    from soma.station.traceability import Records

    records = Records(db)
    if firmware:  # checked, then built, before any unit is opened
        require_boot_loader(firmware)
    image = Image.build(firmware)
    progress = _progress(ports, as_json)

    def one(port: str) -> "FlashResult | SomaError":
        try:
            # firmware=False: a blank unit has none; a unit on another protocol is what flash fixes
            with (
                records.stage("flash", "failed", station, operator) as stage,
                open_unit(port, baud, firmware=False) as unit,
            ):
                stage.met(unit.info)  # None on a blank unit: recorded once the new firmware names it
                result = flash_recorded(unit, stage, image, progress.updater(port))
        except Exception as exc:  # an expected failure is this port's; a bug stops the command
            failure = expected(exc, port)
            if failure is None:
                raise
            return failure
        return result

    with progress, ThreadPoolExecutor(max_workers=len(ports)) as pool:
        results = list(pool.map(one, ports))
    for port, result in zip(ports, results, strict=True):
        if isinstance(result, SomaError):
            if as_json:
                click.echo(json.dumps({"port": port, "status": "failed", "error": str(result)}))
            click.echo(f"soma: error: {result}", err=True)
        elif as_json:
            click.echo(json.dumps(result.__dict__))
        else:
            click.echo(_outcome_text(result))
    failures = [result for result in results if isinstance(result, SomaError)]
    if len(ports) == 1 and failures:
        sys.exit(failures[0].exit_code)
    if failures or any(result.status == "rolled_back" for result in results if not isinstance(result, SomaError)):
        sys.exit(1)


def _outcome_text(result: "FlashResult") -> str:
    """A unit's outcome; a rollback with its reason (the failed boot's console output) below."""
    from soma.station.line import ROLLED_BACK

    status, firmware = result.status, result.firmware_hash
    details = {
        "unchanged": f"{firmware} already runs",
        "restarted": f"{firmware} was stopped at the REPL: restarted, it answers again",
        "rolled_back": f"{firmware}: {ROLLED_BACK}",
    }
    detail = details.get(status, f"{firmware} in slot {result.slot}, {result.files_sent} files sent")
    text = f"{result.port}: {status} ({detail})"
    if status == "rolled_back":
        text += "\n  why, the failed boot's console output:\n" + indent(result.boot_output, "    ")
    return text


def _progress(ports: Iterable[str], quiet: bool) -> "_Bars | _NoProgress":
    """A progress bar per unit on a terminal; nothing otherwise."""
    return _NoProgress() if quiet or not sys.stdout.isatty() else _Bars(ports)


class _Bars:
    def __init__(self, ports: Iterable[str]) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        self._display = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn())
        self._tasks = {port: self._display.add_task(port, total=None) for port in ports}

    def __enter__(self) -> "_Bars":
        self._display.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        return self._display.__exit__(*exc)

    def updater(self, port: str) -> ProgressFn:
        return lambda done, total, name: self._display.update(self._tasks[port], completed=done, total=total)


class _NoProgress:
    def __enter__(self) -> "_NoProgress":
        return self

    def __exit__(self, *exc: Any) -> Literal[False]:
        return False

    def updater(self, port: str) -> ProgressFn | None:
        return None
