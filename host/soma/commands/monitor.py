"""soma monitor: a unit's live telemetry, a live table in human units on a terminal, the
wire's fields as JSON lines otherwise; telemetry asked for again whenever the unit restarts."""

import json
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import click

if TYPE_CHECKING:
    from rich.table import Table

    from soma.link.management import ManagementClient

EPILOG = """\b
Examples:
  soma monitor --port /dev/pts/7
  soma monitor --port /dev/pts/7 --seconds 60
  soma monitor --port /dev/pts/7 --json --seconds 10 > night.jsonl
"""
RESUBSCRIBE_S = 10.0  # how long a restarted unit gets to take the telemetry request again


@click.command(epilog=EPILOG)
@click.option("--port", required=True, help="Serial port of the unit.")
@click.option("--period-ms", default=500, show_default=True, type=click.IntRange(100, 60_000))
@click.option("--seconds", type=click.FloatRange(0), help="Stop after this long (default: until Ctrl-C).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines (the wire's fields) even on a terminal.")
@click.option("--baud", default=115200, show_default=True)
def command(port: str, period_ms: int, seconds: float | None, as_json: bool, baud: int) -> None:
    """Pads, drives and power, outputs, faults, the sleeper, sync and loop health, live.
    A unit that restarts is said so, and its telemetry is asked for again."""
    from soma.link.session import open_unit

    live = not as_json and sys.stdout.isatty()
    end = time.monotonic() + seconds if seconds is not None else None
    with open_unit(port, baud) as unit:
        assert unit.info is not None, "open_unit (firmware=True) asked the unit's info"
        watch = _Watch(unit.client, period_ms, unit.info.fields, port)
        try:
            with _LiveTable() if live else _NoTable() as table:
                table.title(watch.title)
                watch.subscribe()
                while end is None or time.monotonic() < end:
                    for item in watch.poll():
                        if live:
                            table.take(item, watch.title)
                        else:
                            click.echo(json.dumps(item.shown))
        except KeyboardInterrupt:
            pass
        finally:
            watch.stop()


@dataclass
class _Item:
    """One thing the unit said: kind "telemetry" or "event" (`name`: the event's message), or
    "notice" (the unit restarted); `shown` is its JSON line (the wire's fields, enums by name),
    `fields` its values as the codec nests them (none for a notice)."""

    kind: str
    shown: dict[str, Any]
    fields: dict[str, Any] = field(default_factory=dict[str, Any])
    name: str = ""


class _Watch:
    """The unit's telemetry and events as they come (poll), and telemetry asked for again
    whenever the unit restarts (a restarted unit streams nothing until asked; its boot event
    says it restarted)."""

    def __init__(self, client: "ManagementClient", period_ms: int, info: dict[str, Any], port: str) -> None:
        from soma.link.telemetry import bed_title

        self.client = client
        self.period_ms = period_ms
        self.port = port
        self.title = bed_title(info, port)

    def subscribe(self) -> None:
        """Ask for telemetry, again for up to RESUBSCRIBE_S (a unit just restarted may be busy
        starting); the last failure is raised (the session names it)."""
        from soma.link.management import ManagementTimeout

        deadline = time.monotonic() + RESUBSCRIBE_S
        while True:
            try:
                self.client.request("telemetry_control", [self.period_ms], timeout=1.0)
                return
            except ManagementTimeout:
                if time.monotonic() > deadline:
                    raise

    def stop(self) -> None:
        """Stop the stream; a unit that has gone quiet stops it by itself at its next restart."""
        from soma.link.management import ManagementTimeout

        try:
            self.client.request("telemetry_control", [0], timeout=3)
        except ManagementTimeout:
            pass

    def poll(self) -> list[_Item]:
        from soma.link.management import KINDS
        from soma_protocol import codec

        self.client.poll(0.1)
        items: list[_Item] = []
        restarted: int | None = None
        while self.client.events:
            name, values = self.client.events.popleft()
            payload = codec.payload_name(KINDS["event"], _message_id(name))
            fields = codec.nest(payload, values)
            items.append(_Item("event", {"event": name, **codec.render(payload, values)}, fields, name))
            if name == "boot_event":
                restarted = fields["reset_cause"]
        while self.client.telemetry:
            values = self.client.telemetry.popleft()
            fields = codec.nest("telemetry", values)
            items.append(_Item("telemetry", codec.render("telemetry", values), fields))
        if restarted is not None:
            items.append(self._resume(restarted))
        return items

    def _resume(self, cause: int) -> _Item:
        """Telemetry asked for again after a restart, the bed's title read again (a restart
        may follow provisioning); the notice that says so."""
        from soma.link.telemetry import bed_title, reset_cause_name, restart_notice

        self.subscribe()
        self.title = bed_title(self.client.request_fields("info", timeout=2.0), self.port)
        notice = restart_notice(cause)
        return _Item("notice", {"notice": notice, "reset_cause": reset_cause_name(cause)})


def _message_id(name: str) -> int:
    from soma_protocol.enums import MessageId

    return int(MessageId[name])


class _NoTable:
    def __enter__(self) -> "_NoTable":
        return self

    def __exit__(self, *exc: Any) -> Literal[False]:
        return False

    def title(self, text: str) -> None:
        """Nothing to show without a live table (JSON lines are printed instead)."""

    def take(self, item: _Item, title: str) -> None:
        """Nothing to show without a live table (JSON lines are printed instead)."""


class _LiveTable:
    """A rich Live table of the newest telemetry frame in human units, under a header naming
    the bed, with the latest events and notices."""

    def __init__(self) -> None:
        from rich.live import Live

        self._live = Live(refresh_per_second=4)
        self._title = ""
        self._lines: list[str] = []  # the latest events and notices
        self._frame: dict[str, Any] | None = None  # the newest telemetry, nested

    def __enter__(self) -> "_LiveTable":
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        return self._live.__exit__(*exc)

    def title(self, text: str) -> None:
        self._title = text
        self._live.update(self._table())

    def take(self, item: _Item, title: str) -> None:
        from soma.link.telemetry import event_text

        if item.kind == "telemetry":
            self._frame = item.fields
        else:
            line = event_text(item.name, item.fields) if item.kind == "event" else item.shown["notice"]
            self._lines = (self._lines + [f"{time.strftime('%H:%M:%S')} {line}"])[-5:]
        self._title = title
        self._live.update(self._table())

    def _table(self) -> "Table":
        from rich.table import Table

        from soma.link.telemetry import telemetry_rows

        table = Table("", "", title=self._title, show_header=False)
        if self._frame is None:
            table.add_row("telemetry", "waiting for the first frame...")
        else:
            for label, text in telemetry_rows(self._frame):
                table.add_row(label, text)
        for line in self._lines:
            table.add_row("", line)
        return table
