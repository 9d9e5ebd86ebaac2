"""soma station: the production line for one unit or many at once, from a blank MicroPython
board to a labelled unit: flash -> calibrate (bath) -> provision -> bench (fixture) -> label."""

import json
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from soma.station.line import STAGES
from soma_protocol.constants import NO_ROOT

if TYPE_CHECKING:
    from rich.table import Table

    from soma.station.line import Placement, UnitRun

EPILOG = """\b
Examples:
  soma station --port /dev/pts/7 --port /dev/pts/9 --bath /dev/pts/5 \\
      --key sanctuary.key --sanctuary 7 --first-bed 1 --junit station.xml
  soma station --station-file line3.toml          ports, bath, key... from the file
  soma station --port /dev/pts/7 --bath /dev/pts/5 --key sanctuary.key \\
      --sanctuary 7 --redo bench                  bench it again, though it passed
"""
STATE_STYLE = {
    "waiting": "",
    "running": "yellow",
    "passed": "green",
    "skipped": "cyan",
    "failed": "bold red",
    "not reached": "dim",
}


@click.command(epilog=EPILOG)
@click.option("--port", "ports", multiple=True, required=True, help="Serial port of a unit (repeatable).")
@click.option("--bath", "bath_port", required=True, help="Serial port of the calibration bath.")
@click.option("--fixture", "fixture_port", help="Serial port of the bench fixture (default: the bath's).")
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False), help="Bench plan (TOML; default: the SB-1 plan).")
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="The sanctuary's key file (hex), provisioned into every unit.",
)
@click.option("--sanctuary", "sanctuary_id", required=True, type=click.IntRange(0, 0xFFFF), help="Sanctuary id.")
@click.option(
    "--first-bed",
    default=1,
    show_default=True,
    type=click.IntRange(1, NO_ROOT - 1),
    help="Bed id of the first --port's unit; each next port's unit the next id.",
)
@click.option(
    "--redo", multiple=True, type=click.Choice(STAGES), help="Do this stage again where it passed before (repeatable)."
)
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False), help="Write the run as JUnit XML.")
@click.option("--json", "as_json", is_flag=True, help="Progress and outcomes as JSON lines.")
@click.option(
    "--control",
    help="A running simulator's control socket: the station moves its beds into the bath and the fixture "
    "itself (default: `soma sim`'s, if the ports are its beds; otherwise the operator is asked).",
)
@click.option("--firmware", type=click.Path(file_okay=False, exists=True), help="Firmware tree (default: firmware/).")
@click.option("--baud", default=115200, show_default=True)
@click.option("--db", help="Traceability database (URL or SQLite file; default: $SOMA_DB or the user's).")
@click.option("--station", help="This station's name in the records (default: the host name).")
@click.option("--operator", default="", help="Who runs the line, for the records.")
def command(
    ports: tuple[str, ...],
    bath_port: str,
    fixture_port: str | None,
    plan_file: str | None,
    key_file: str,
    sanctuary_id: int,
    first_bed: int,
    redo: tuple[str, ...],
    junit_file: str | None,
    as_json: bool,
    control: str | None,
    firmware: str | None,
    baud: int,
    db: str | None,
    station: str | None,
    operator: str,
) -> None:
    """Flash each unit, calibrate them in the bath together, provision each with the
    sanctuary key and its bed id, bench-test them (the fixture's steps one unit at a time,
    the radio with the sanctuary key), and print a label line for each unit that passed.
    A stage a unit passed before (per the records, and still true on the unit) is skipped
    unless --redo names it. One verdict per unit; exit 0 only if every unit passed, 1 if
    one failed, 2 on a usage error."""
    import os
    import socket

    from soma.errors import SomaError
    from soma.files import write_atomically
    from soma.sanctuary.keys import read_key
    from soma.station.bench.plan import DEFAULT_PLAN, Plan
    from soma.station.firmware_build import require_boot_loader
    from soma.station.flashing import Image
    from soma.station.line import Line, LineSettings, exit_status, junit_xml
    from soma.station.traceability import Records

    if len(set(ports)) != len(ports):
        raise SomaError("--port: a port given twice: give each unit's port once")
    if first_bed + len(ports) - 1 > NO_ROOT - 1:
        raise SomaError(f"--first-bed {first_bed}: {len(ports)} units need bed ids up to {NO_ROOT - 1} at most")
    if bath_port in ports or (fixture_port or bath_port) in ports:
        raise SomaError(
            f"{bath_port if bath_port in ports else fixture_port}: given as a unit's port and an instrument's"
        )
    if junit_file and not os.path.isdir(os.path.dirname(os.path.abspath(junit_file))):
        raise SomaError(f"--junit {junit_file}: no folder to write it in (create it, or name another)")
    plan = Plan.load(plan_file or DEFAULT_PLAN)
    key = read_key(key_file)
    if firmware:
        require_boot_loader(firmware)
    station = station or socket.gethostname()
    records = Records(db)
    image = Image.build(firmware)
    settings = LineSettings(
        ports=ports,
        bath_port=bath_port,
        fixture_port=fixture_port or bath_port,
        plan=plan,
        key=key,
        key_file=key_file,
        sanctuary_id=sanctuary_id,
        first_bed=first_bed,
        redo=frozenset(redo),
        station=station,
        operator=operator,
        baud=baud,
    )
    display = _display(as_json)
    line = Line(settings, image, records, _placement(control, ports, display), display.update)
    display.show(line.units)
    with display:
        units = line.run()
    if junit_file:
        text = junit_xml(units, station, sanctuary_id).encode()
        write_atomically(junit_file, lambda f: f.write(text), "JUnit report")
    for unit in units:
        if as_json:
            click.echo(json.dumps(_outcome(unit, sanctuary_id)))
        elif unit.passed:
            click.echo(f"label: {unit.label(sanctuary_id)}")
        else:
            click.echo(f"{unit.port} {unit.serial or '-'}: {unit.verdict}")
        if unit.error:  # as every command tells an error, one line each
            click.echo(f"soma: error: {unit.error}", err=True)
    if not as_json:
        passed = sum(unit.passed for unit in units)
        click.echo(f"{passed} of {len(units)} units passed" + ("" if passed == len(units) else ": FAILED"))
    sys.exit(exit_status(units))


def _placement(control: str | None, ports: Sequence[str], display: "_Display") -> "Placement":
    """A simulator's beds are moved through its control socket; real units by the operator."""
    from soma.errors import SomaError
    from soma.sim.control import DEFAULT_CONTROL
    from soma.station.line import OperatorPlacement, SimPlacement

    if control is not None:
        placement = SimPlacement.find(control, ports)
        if placement is None:
            raise SomaError(f"--control {control}: no simulator answers there (`soma sim` starts one)")
        return placement
    try:
        placement = SimPlacement.find(str(DEFAULT_CONTROL), ports)
    except SomaError:
        placement = None  # a simulator runs, but these are real units
    return placement or OperatorPlacement(display.ask)


def _outcome(unit: "UnitRun", sanctuary_id: int) -> dict[str, Any]:
    stages = {stage: outcome.__dict__ for stage, outcome in unit.stages.items()}
    failed = unit.failed_stage
    return {
        "port": unit.port,
        "serial": unit.serial,
        "bed_id": unit.bed_id,
        "passed": unit.passed,
        "failed_stage": failed,
        "reason": unit.stages[failed].detail if failed else "",
        "label": unit.label(sanctuary_id) if unit.passed else None,
        "stages": stages,
    }


def _display(as_json: bool) -> "_Lines | _LiveTable":
    """A live table on a terminal; otherwise a line (or a JSON line) per change."""
    if not as_json and sys.stdout.isatty():
        return _LiveTable()
    return _Lines(as_json)


class _Display:
    """What both displays share: the units, a lock, and asking the operator."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the units' threads report at once
        self.units: list[UnitRun] = []

    def show(self, units: "list[UnitRun]") -> None:
        self.units = units

    def ask(self, instruction: str) -> None:
        """Tell the operator what to do; return once they press Enter."""
        from soma.errors import SomaError

        with self._lock:
            self._pause()
            try:
                click.echo(f"operator: {instruction}, then press Enter", err=True)
                if not sys.stdin.readline():
                    raise SomaError(
                        f"no operator answered (standard input closed) when asked to {instruction}: run soma station "
                        "on a terminal, or give --control for a simulator's beds"
                    )
            finally:
                self._resume()

    def _pause(self) -> None:
        """Stop drawing while the operator is asked (a plain display draws nothing between)."""

    def _resume(self) -> None:
        """Draw again."""


class _Lines(_Display):
    """A line per change of a unit's stage: text, or a JSON object."""

    def __enter__(self) -> "_Lines":
        return self

    def __exit__(self, *exc: object) -> None:
        """Each line is out as it is told."""

    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self._as_json = as_json
        self._told: dict[tuple[str, str], tuple[str, str]] = {}

    def update(self, unit: "UnitRun", stage: str) -> None:
        outcome = unit.stages[stage]
        with self._lock:
            now = (outcome.state, outcome.detail)
            if self._told.get((unit.port, stage)) == now:
                return
            self._told[(unit.port, stage)] = now
            if self._as_json:
                fields = {"port": unit.port, "serial": unit.serial, "stage": stage, "state": outcome.state}
                click.echo(json.dumps({**fields, "detail": outcome.detail}))
            else:
                detail = f": {outcome.detail}" if outcome.detail else ""
                click.echo(f"{unit.port} {unit.serial or '-'} {stage} {outcome.state}{detail}")


class _LiveTable(_Display):
    """A table of the units and their stages, redrawn as they go."""

    def __init__(self) -> None:
        from rich.live import Live

        super().__init__()
        self._live: Live = Live(refresh_per_second=4, transient=False)

    def update(self, unit: "UnitRun", stage: str) -> None:
        with self._lock:
            self._live.update(self._table())

    def _table(self) -> "Table":
        from rich import box
        from rich.table import Table
        from rich.text import Text

        table = Table("port", "unit", "bed", *STAGES, box=box.SIMPLE_HEAD)
        for unit in self.units:
            cells = [
                Text(outcome.state + (f": {outcome.detail}" if outcome.detail else ""), STATE_STYLE[outcome.state])
                for outcome in (unit.stages[stage] for stage in STAGES)
            ]
            table.add_row(unit.port, unit.serial or "-", str(unit.bed_id), *cells)
        return table

    def _pause(self) -> None:
        self._live.stop()

    def _resume(self) -> None:
        self._live.start()

    def __enter__(self) -> "_LiveTable":
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._live.update(self._table())
        self._live.stop()
