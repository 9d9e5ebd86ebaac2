"""soma monitor: a unit's live telemetry, a live table on a terminal, JSON lines otherwise."""

import json
import sys
import time

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
def command(port, period_ms, seconds, as_json, baud):
    """Temperatures, set points, drives, heater currents, outputs, faults and loop health."""
    from soma_protocol import codec

    from ..unit import UnitLink

    live = not as_json and sys.stdout.isatty()
    end = time.monotonic() + seconds if seconds is not None else None
    with UnitLink(port, baud) as link:
        client = link.management()
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


def _message_id(name):
    from soma_protocol import schema

    return int(schema.MessageId.encmapping[name])


class _NoTable:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _LiveTable:
    """A rich Live table of the newest telemetry frame and the latest events."""

    def __init__(self):
        from rich.live import Live

        self._live = Live(refresh_per_second=4)
        self._events = []

    def __enter__(self):
        self._live.__enter__()
        return self

    def __exit__(self, *exc):
        return self._live.__exit__(*exc)

    def note(self, event):
        self._events = (self._events + [json.dumps(event)])[-5:]

    def show(self, frame):
        from rich.table import Table

        table = Table("telemetry", "value")
        for key, value in frame.items():
            table.add_row(key, str(value))
        for line in self._events:
            table.add_row("event", line)
        self._live.update(table)
