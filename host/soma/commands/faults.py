"""soma faults: the safety supervisor's latched faults on a unit, and clearing them."""

import json
import sys

import click

# Faults fault_clear never clears (firmware/safety.py), and what does.
NOT_BY_REQUEST = {
    "self_test": "cleared only by a reboot whose self-checks pass",
    "auto_off": "clears by itself at the next intent to heat: a set point, a program, an autotune (reads never do)",
}

EPILOG = """\b
Examples:
  soma faults --port /dev/pts/7
  soma faults --port /dev/pts/7 --clear
  soma faults --port /dev/pts/7 --clear overtemp --json
"""


@click.command(epilog=EPILOG)
@click.option("--port", required=True, help="Serial port of the unit.")
@click.option("--baud", default=115200, show_default=True)
@click.option(
    "--clear",
    "to_clear",
    is_flag=False,
    flag_value="all",
    default=None,
    metavar="[FAULT,...|all]",
    help="Clear these latched faults (default: all); the unit clears only those whose cause has gone.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(port: str, baud: int, to_clear: str | None, as_json: bool) -> None:
    """List the unit's latched faults; with --clear, ask it to clear them. A fault whose cause
    is still there (a pad still at 42 degC, a thermistor still open) stays latched, as do
    self_test (a reboot clears it) and auto_off (it clears itself): exit 1."""
    from soma.errors import SomaError
    from soma.link.management import ALL_FAULTS, fault_mask, fault_names
    from soma.link.session import open_unit

    if to_clear is None or to_clear == "all":
        mask = ALL_FAULTS
    else:
        names = [name.strip() for name in to_clear.split(",") if name.strip()]
        if not names:
            raise SomaError("--clear: no fault named (give FAULT,... or all)")
        try:
            mask = fault_mask(names)
        except ValueError as exc:
            raise SomaError(f"--clear: {exc}") from None
    with open_unit(port, baud) as unit:
        if to_clear is None:
            assert unit.info is not None, "open_unit (firmware=True) asked the unit's info"
            cleared, latched = 0, unit.info["fault_mask"]  # the session's info, asked as it opened
        else:
            cleared, latched = unit.client.request("fault_clear", [mask], timeout=3)
    stuck = latched & mask if to_clear is not None else 0
    view = {"port": port, "latched": fault_names(latched), "cleared": fault_names(cleared)}
    if as_json:
        click.echo(json.dumps(view))
    else:
        if to_clear is not None:
            click.echo(f"{port}: cleared {', '.join(view['cleared']) or 'nothing'}")
        click.echo(f"{port}: latched {', '.join(view['latched']) or 'nothing'}")
        for name in fault_names(stuck):
            click.echo(f"still latched: {name} ({NOT_BY_REQUEST.get(name, 'its cause has not gone')})", err=True)
    sys.exit(1 if stuck else 0)
