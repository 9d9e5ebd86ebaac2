"""soma sim: run a simulated sanctuary of virtual beds until Ctrl-C or `soma sim stop`."""

import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from soma.errors import SomaError
from soma.sim.control import DEFAULT_CONTROL, FAULT_KINDS

EPILOG = """\b
Examples:
  soma sim --beds 4                      four flashed beds; prints their ports as JSON
  soma sim --beds 1 --blank --baud 115200  a factory-new unit on a paced line
  soma sim --beds 4 --blank --time-scale 20 --bath-time-scale 1000   a line's units: the bath fast
  soma sim status                        what the running simulator has
  soma sim fault --bed 2 open 0          open bed 2's left pad thermistor
  soma sim heal --bed 2 open 0
  soma sim reset --bed 1 --cause power
  soma sim bath --in 1 2                 beds 1 and 2 into the calibration bath
  soma sim fixture --in 1                bed 1 into the bench fixture (for soma bench)
  soma sim partition 1,2 3               beds 1-2 and bed 3 cannot hear each other
  soma sim partition                     heal it
  soma sim power-cut --bed 1 --after-bytes 30   the next record write stops half-way
  soma sim stall --bed 1                 hang bed 1: its watchdog resets it
  soma sim record --bed 1 --seconds 600 night.csv   bed 1's raw sensor samples (soma replay)
  soma sim stop
"""


# `soma sim [OPTIONS]` runs the simulator; `soma sim [--control PATH] VERB` talks to a running one.
@click.group(invoke_without_command=True, epilog=EPILOG)
@click.option("--beds", default=1, show_default=True, type=click.IntRange(1, 64), help="Virtual beds.")
@click.option("--blank", is_flag=True, help="Factory-new units: MicroPython only, empty flash.")
@click.option(
    "--time-scale", default=1.0, show_default=True, type=click.FloatRange(0.1, 10_000), help="Pad physics speed-up."
)
@click.option(
    "--bath-time-scale",
    type=click.FloatRange(0.1, 10_000),
    help="The calibration bath's speed-up (default: --time-scale); a unit in it takes its temperature.",
)
@click.option("--seed", default=1, show_default=True, help="Seed of the units' serials, clocks and tolerances.")
@click.option("--baud", type=click.IntRange(300, 4_000_000), help="Pace each serial line (default: unpaced).")
@click.option("--loss", default=0.0, show_default=True, type=click.FloatRange(0, 1), help="Radio frame loss.")
@click.option(
    "--in-bed-at",
    default=600.0,
    show_default=True,
    type=click.FloatRange(0),
    help="When the sleepers get into bed, seconds of (scaled) night.",
)
@click.option("--root", type=click.Path(file_okay=False), help="Where the beds' flash directories live (kept).")
@click.option("--control", "control", default=str(DEFAULT_CONTROL), show_default=True, help="Control socket path.")
@click.pass_context
def command(
    ctx: click.Context,
    beds: int,
    blank: bool,
    time_scale: float,
    bath_time_scale: float | None,
    seed: int,
    baud: int | None,
    loss: float,
    in_bed_at: float,
    root: str | None,
    control: str,
) -> None:
    """Run virtual beds on pseudo-terminals that pyserial and mpremote open like USB ports.
    Exit 1 if a bed's safety oracle saw a breach of a SPEC §3 rule while it ran."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = control
        return
    from soma.sim.control import ControlServer
    from soma.sim.radio import RadioSettings
    from soma.sim.sanctuary import Sanctuary

    if Path(control).exists():
        raise SomaError(f"a simulator already runs on {control} (`soma sim stop`), or remove the stale socket")
    if blank and root:  # a kept flash directory is the user's: refused, never erased
        flashed = [folder for folder in (Path(root) / f"bed{n}" for n in range(1, beds + 1)) if any(folder.glob("*"))]
        if flashed:
            raise SomaError(
                f"--blank: {flashed[0]} already holds a unit's flash: give --root an empty or new folder"
                " (or leave out --blank to run the units it holds)"
            )
    sanctuary = Sanctuary(
        beds=beds,
        seed=seed,
        root=root,
        flashed=not blank,
        baud=baud,
        time_scale=time_scale,
        bath_time_scale=bath_time_scale,
        radio=RadioSettings(loss=loss),
        in_bed_at_s=in_bed_at,
    ).start()
    server = ControlServer(sanctuary, control)
    signal.signal(signal.SIGTERM, lambda *_: server.stopped.set())
    try:
        server.start()
        click.echo(json.dumps({**sanctuary.describe(), "control": control}, indent=2))
        sys.stdout.flush()
        while not server.stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        sanctuary.stop()
    if sanctuary.breaches:  # every bed's safety oracle watched the whole run
        told = "; ".join(f"{rule} ({detail})" for summary in sanctuary.safety() for _, rule, detail in summary["first"])
        raise SomaError(f"the safety oracle saw {sanctuary.breaches} breaches: {told}", exit_code=1)


def _call(ctx: click.Context, request: dict[str, Any]) -> None:
    from soma.sim.control import call

    try:
        answer = call(ctx.obj, request)
    except (FileNotFoundError, ConnectionRefusedError):
        raise SomaError(f"no simulator runs on {ctx.obj}") from None
    except OSError as exc:
        raise SomaError(f"simulator control socket {ctx.obj}: {exc}") from None
    if "error" in answer:
        raise SomaError(answer["error"])
    click.echo(answer["ok"] if isinstance(answer["ok"], str) else json.dumps(answer["ok"], indent=2))


@command.command()
@click.pass_context
def stop(ctx: click.Context) -> None:
    """Stop the running simulator (every bed process, no port left behind)."""
    _call(ctx, {"op": "stop"})


@command.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Print the running simulator's beds as JSON."""
    _call(ctx, {"op": "status"})


@command.command()
@click.option("--bed", required=True, type=int, help="Bed number, from 1.")
@click.option("--cause", type=click.Choice(["hard", "power"]), default="hard", show_default=True)
@click.pass_context
def reset(ctx: click.Context, bed: int, cause: str) -> None:
    """Hard-reset or power-cycle a bed (its flash directory is kept)."""
    _call(ctx, {"op": "reset", "bed": bed, "cause": cause})


def _fault_verb(op: str, summary: str) -> click.Command:
    @command.command(name=op, help=summary)
    @click.option("--bed", required=True, type=int, help="Bed number, from 1.")
    @click.argument("kind", type=click.Choice(FAULT_KINDS))  # the control socket's list
    @click.argument("index", type=int)
    @click.pass_context
    def verb(ctx: click.Context, bed: int, kind: str, index: int) -> None:
        _call(ctx, {"op": op, "bed": bed, "kind": kind, "index": index})

    return verb


fault = _fault_verb(
    "fault",
    "Inject a fault: thermistor open/short/frozen (sensor 0..2), or a zone's heater disconnected, its H-bridge"
    " shorted (bridge_short: full heat while it has supply) or its current sense open (sense_open) (zone 0..1).",
)
heal = _fault_verb("heal", "Remove an injected fault.")


def _station_verb(op: str, what: str) -> Callable[..., Any]:
    @click.option("--in", "inside", flag_value=True, default=True, help=f"Into the {what} (the default).")
    @click.option("--out", "inside", flag_value=False, help=f"Out of the {what}.")
    @click.argument("beds", nargs=-1, type=int, required=True)
    @click.pass_context
    def verb(ctx: click.Context, inside: bool, beds: tuple[int, ...]) -> None:
        _call(ctx, {"op": op, "beds": list(beds), "inside": inside})

    return verb


bath = command.command(
    "bath", help="Put beds into the calibration bath (their thermistors see its temperature) or take them out."
)(_station_verb("bath", "bath"))
fixture = command.command(
    "fixture", help="Put beds into the bench fixture (reference radio, photodiode, accelerometer) or take them out."
)(_station_verb("fixture", "fixture"))


@command.command()
@click.argument("groups", nargs=-1)
@click.pass_context
def partition(ctx: click.Context, groups: tuple[str, ...]) -> None:
    """Split the radio into groups of beds (e.g. 1,2 3); no groups heals the partition."""
    try:
        parsed = [[int(number) for number in group.split(",")] for group in groups]
    except ValueError:
        raise SomaError("groups are comma-separated bed numbers, e.g. 1,2 3") from None
    _call(ctx, {"op": "partition", "groups": parsed})


@command.command("power-cut")
@click.option("--bed", required=True, type=int, help="Bed number, from 1.")
@click.option("--after-bytes", required=True, type=click.IntRange(0), help="Flash bytes written before the cut.")
@click.pass_context
def power_cut(ctx: click.Context, bed: int, after_bytes: int) -> None:
    """Cut a bed's power in the middle of its next flash writes (a half-written file stays)."""
    _call(ctx, {"op": "power_cut", "bed": bed, "after_bytes": after_bytes})


@command.command()
@click.option("--bed", required=True, type=int, help="Bed number, from 1.")
@click.pass_context
def stall(ctx: click.Context, bed: int) -> None:
    """Hang a bed's firmware (its loop stops); the watchdog resets it within 2 s."""
    _call(ctx, {"op": "stall", "bed": bed})


@command.command()
@click.option("--bed", required=True, type=int, help="Bed number, from 1.")
@click.option("--seconds", required=True, type=click.FloatRange(min=1, max=86_400), help="How long to record.")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
@click.pass_context
def record(ctx: click.Context, bed: int, seconds: float, path: str) -> None:
    """Record a bed's raw BCG samples (and its sleeper's ground truth) to a CSV file for
    `soma replay`; returns when the file is complete."""
    import time

    target = Path(path).resolve()
    _call(ctx, {"op": "record", "bed": bed, "path": str(target), "seconds": seconds})
    partial = target.with_name(target.name + ".partial")  # renamed to the target when complete
    deadline = time.monotonic() + seconds + 10
    while partial.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if partial.exists() or not target.exists():
        raise SomaError(f"the recording to {target} did not complete (did the simulator stop?)")
    click.echo(f"recorded: {target}")
