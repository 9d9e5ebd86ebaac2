"""soma monitor: a unit's live telemetry, a live table on a terminal, JSON lines otherwise."""

import json
import sys
import time
from typing import Any, Literal

import click

EPILOG = """\b
Examples:
  soma monitor --port /dev/pts/7
  soma monitor --port /dev/pts/7 --json --seconds 10 > night.jsonl
"""


@click.command(epilog=EPILOG)
@click.option("--port", required=True, help="Serial port of the unit.")
@click.option("--period-ms", default=500, show_default=True, type=click.IntRange(100, 60_000))
@click.option("--seconds", type=click.FloatRange(0), help="Stop after this long (default: until Ctrl-C).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines even on a terminal.")
@click.option("--baud", default=115200, show_default=True)
def command(port: str, period_ms: int, seconds: float | None, as_json: bool, baud: int) -> None:
    """Temperatures, set points, drives, heater currents, outputs, faults and loop health."""
    from soma.link.session import open_unit
    from soma_protocol import codec

    live = not as_json and sys.stdout.isatty()
    end = time.monotonic() + seconds if seconds is not None else None
    with open_unit(port, baud) as unit:
        client = unit.client
        client.request("telemetry_control", [period_ms], timeout=3)
        try:
            with _LiveTable() if live else _NoTable() as table:
                while end is None or time.monotonic() < end:
                    client.poll(0.1)
                    while client.telemetry:
                        frame = codec.render("telemetry", client.telemetry.popleft())
                        if live:
                            table.show(frame)
                        else:
                            click.echo(json.dumps(frame))
                    while client.events:
                        name, values = client.events.popleft()
                        event = {"event": name, **codec.render(codec.payload_name(4, _message_id(name)), values)}
                        if live:
                            table.note(event)
                        else:
                            click.echo(json.dumps(event))
        except KeyboardInterrupt:
            pass
        finally:
            client.request("telemetry_control", [0], timeout=3)


def _message_id(name: str) -> int:
    from soma_protocol.enums import MessageId

    return int(MessageId[name])


class _NoTable:
    def __enter__(self) -> "_NoTable":
        return self

    def __exit__(self, *exc: Any) -> Literal[False]:
        return False

    def note(self, event: dict[str, Any]) -> None:
        """Nothing to show without a live table (JSON lines are printed instead)."""

    def show(self, frame: dict[str, Any]) -> None:
        """Nothing to show without a live table (JSON lines are printed instead)."""


class _LiveTable:
    """A rich Live table of the newest telemetry frame and the latest events."""

    def __init__(self) -> None:
        from rich.live import Live

        self._live = Live(refresh_per_second=4)
        self._events: list[str] = []

    def __enter__(self) -> "_LiveTable":
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        return self._live.__exit__(*exc)

    def note(self, event: dict[str, Any]) -> None:
        self._events = (self._events + [json.dumps(event)])[-5:]

    def show(self, frame: dict[str, Any]) -> None:
        from rich.table import Table

        table = Table("telemetry", "value")
        for key, value in frame.items():
            table.add_row(key, str(value))
        for line in self._events:
            table.add_row("event", line)
        self._live.update(table)
