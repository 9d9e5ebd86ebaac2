"""A unit session: one line to one unit (its REPL and its management protocol), the unit's
identity asked once, and every failure a user can act on as one line that names the fix.

    with open_unit(port) as unit:          # asks info, refuses another protocol
        unit.info.serial, unit.info["fault_mask"]
        unit.client.request(...)           # the one management client of the line
    with open_unit(port, firmware=False) as unit:   # a blank unit too (soma flash)
        unit.info                          # None: no firmware answered
        with unit.raw_repl(): ...

Inside the block (and while opening) a unit that stops answering, refuses a request or
answers with a REPL becomes the SomaError of its cause (soma.errors.CAUSES), naming the port
and what to do: a Soma firmware stopped at the REPL is told from a blank unit, and another
device (a calibration bath on the unit's port) from silence.
"""

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import serial

from soma.errors import SomaError, expected, failure
from soma.link.management import DeviceError, ManagementTimeout, NotFirmware
from soma.link.unit import UnitLink
from soma_protocol import codec, ir
from soma_protocol.enums import BootState

INFO_TIMEOUT_S = 3.0  # a running unit answers info at once; this is for a slow line
PROBE_TIMEOUT_S = 0.3  # "is firmware running?" where a blank unit is expected too
IDENTIFY_TIMEOUT_S = 1.0  # an instrument answers *IDN? at once
# Run at the raw REPL: whether the flash holds the Soma firmware (its boot loader, boot
# state or a slot), which tells a stopped firmware from a blank unit.
FIRMWARE_FILES_PROBE = (
    "import os\nprint(any(n in ('main.py', 'boot.json') or n.startswith('slot_') for n in os.listdir()))"
)
PROBE_KINDS = {"stopped": "stopped", "blank": "micropython", "other": "other"}  # what_answers -> probe's kind
# Field values are the codec's decoded construct values (ints, bytes): `Any`.


def host_protocol_hash() -> int:
    """The protocol hash this soma speaks (the schema's; tests patch it to fake a mismatch)."""
    return ir.protocol_hash()


class UnitInfo:
    """A unit's answer to `info`, by field name: `info["fault_mask"]` gives a field as the
    frame carries it (bytes, ints), the properties give the common ones as text."""

    MESSAGE = "info_response"

    def __init__(self, values: Sequence[Any]) -> None:
        self.values = list(values)
        self.fields = codec.nest(self.MESSAGE, self.values)
        self._shown = codec.render(self.MESSAGE, self.values)  # enum fields by name

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    @property
    def serial(self) -> str:
        return self.fields["unit_serial"].decode(errors="replace")

    @property
    def firmware_version(self) -> str:
        return self.fields["firmware_version"].decode(errors="replace")

    @property
    def firmware_hash(self) -> str:
        """Hex, as the image's manifest and `soma flash` show it."""
        return self.fields["firmware_hash"].hex()

    @property
    def protocol_hash(self) -> int:
        return self.fields["protocol_hash"]

    @property
    def boot_state(self) -> BootState | int:
        """Which firmware runs: a BootState (development, confirmed, trial, rolled_back), or
        the number a newer firmware sent."""
        try:
            return BootState(self.fields["boot_state"])
        except ValueError:
            return self.fields["boot_state"]

    def as_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready, as `soma info` shows it: names for enums and flags,
        text for the version and serial, the protocol hash in hex."""
        shown = dict(self._shown)
        shown["firmware_version"] = self.firmware_version
        shown["unit_serial"] = self.serial
        shown["protocol_hash"] = f"{self.protocol_hash:08x}"
        return shown


class Unit:
    """One unit behind a UnitLink: the line's REPL, its one management client, its info."""

    def __init__(self, link: UnitLink) -> None:
        self.link = link
        self.port = link.port
        self.client = link.management()
        self.info: UnitInfo | None = None  # UnitInfo of the firmware's last answer; None: none (yet)
        self._known = False  # whether `info` tells the unit's state since the last reset

    # ---- identity
    def ask_info(self, timeout: float = INFO_TIMEOUT_S) -> UnitInfo:
        """Ask info (a REPL answering fails at once: NotFirmware); keep and return it."""
        self.info = UnitInfo(self.client.request("info", timeout=timeout, noise_fails=True))
        self._known = True
        return self.info

    def firmware_info(self, timeout: float = PROBE_TIMEOUT_S) -> UnitInfo | None:
        """The info of the firmware running now, or None (blank, at the REPL, restarting);
        asked once per reset of the session's unit."""
        if not self._known:
            try:
                self.ask_info(timeout)
            except ManagementTimeout:
                self.info, self._known = None, True
        return self.info

    def wait_info(self, timeout: float, poll_s: float = 0.05) -> UnitInfo | None:
        """The unit's info once its firmware answers (a request sent while it restarts is
        lost: ask again every `poll_s`), or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                values = self.client.request("info", timeout=min(poll_s, max(0.05, deadline - time.monotonic())))
            except ManagementTimeout:
                continue
            self.info, self._known = UnitInfo(values), True
            return self.info
        return None

    def check_protocol(self) -> None:
        """The protocol_mismatch failure unless the unit speaks this soma's protocol (the
        payloads' layout depends on it)."""
        ours, theirs = host_protocol_hash(), self.info.protocol_hash if self.info else None
        if theirs is not None and theirs != ours:
            raise failure("protocol_mismatch", port=self.port, theirs=f"{theirs:08x}", ours=f"{ours:08x}")

    def what_answers(self, echoed: bool) -> tuple[str, str]:
        """When no Soma firmware answers info: what does, as (kind, what): "stopped" (the
        REPL, over a flash holding the Soma firmware), "blank" (the REPL over an empty
        flash), "other" (another device: its identity or what it does), or "silent".
        `echoed`: the line answered with something (NotFirmware), not silence."""
        if not echoed:
            identity = self._instrument_identity()
            return ("other", f"an instrument ({identity})") if identity else ("silent", "")
        try:
            with self.raw_repl(attempts=1):
                found = self.exec(FIRMWARE_FILES_PROBE, timeout=5).decode(errors="replace").strip()
        except SomaError:
            return "other", "a device that sends something other than Soma frames"
        return ("stopped", "") if found == "True" else ("blank", "")

    def _instrument_identity(self) -> str:
        """A SCPI instrument's answer to *IDN? (a calibration bath on the unit's port), or ""
        (it may first refuse the bytes of our info request as a command: ERR:...)."""
        self.link.write(b"\n*IDN?\n")
        answer = b""
        deadline = time.monotonic() + IDENTIFY_TIMEOUT_S
        while time.monotonic() < deadline:
            answer += self.link.read(0.05)
            lines = [line.strip() for line in answer.decode(errors="replace").splitlines()[: answer.count(b"\n")]]
            readable = [line for line in lines if line and line.isprintable()]
            if any(not line.startswith("ERR") for line in readable):
                return next(line for line in readable if not line.startswith("ERR"))
        return ""

    # ---- the REPL side of the line
    def raw_repl(self, attempts: int = 3) -> AbstractContextManager[UnitLink]:
        self._known = False  # whatever ran is interrupted
        return self.link.raw_repl(attempts)

    def exec(self, code: str | bytes, timeout: int = 30, feed: Callable[[serial.Serial], bytes] | None = None) -> bytes:
        return self.link.exec(code, timeout=timeout, feed=feed)

    def restart_raw_repl(self) -> None:
        self.link.restart_raw_repl()

    def soft_reset(self) -> None:
        self._known = False
        self.link.soft_reset()

    def close(self) -> None:
        self.link.close()


@contextmanager
def open_unit(
    port: str, baud: int = 115200, *, firmware: bool = True, info_timeout: float = INFO_TIMEOUT_S
) -> Iterator[Unit]:
    """A Unit session on `port`. With `firmware` (every command but flash) the Soma firmware
    must answer info within `info_timeout` and speak this soma's protocol; without, info is
    asked briefly and is None on a blank unit (the REPL is there for the flasher)."""
    with UnitLink(port, baud) as link, unit_errors(port):
        unit = Unit(link)
        if firmware:
            try:
                unit.ask_info(info_timeout)
            except ManagementTimeout as exc:
                raise _nothing_answers(unit, isinstance(exc, NotFirmware), info_timeout) from None
            unit.check_protocol()
        else:
            unit.firmware_info()
        yield unit


def _nothing_answers(unit: Unit, echoed: bool, waited_s: float) -> SomaError:
    kind, what = unit.what_answers(echoed)
    if kind == "stopped":
        return failure("firmware_stopped", port=unit.port)
    if kind == "blank":
        return failure("blank", port=unit.port)
    if kind == "other":
        return failure("not_soma", port=unit.port, device=what)
    return failure("no_answer", port=unit.port, request="info", seconds=waited_s)


@contextmanager
def unit_errors(port: str) -> Iterator[None]:
    """A unit that stops answering, refuses or whose line fails, as its cause (errors.CAUSES)."""
    try:
        yield
    except Exception as exc:
        known = expected(exc, port)
        if known is None or known is exc:
            raise
        raise known from None


def probe(port: str, timeout: float = 1.0) -> dict[str, Any]:
    """What answers on `port`, leniently (any protocol, no error raised): a JSON-ready dict
    with kind soma (and its serial, firmware, hashes), stopped (the Soma firmware stopped
    at the REPL), micropython (a blank unit: the REPL, no firmware), other (another device,
    and what it is), or unknown (and why)."""
    try:
        with UnitLink(port) as link:
            unit = Unit(link)
            try:
                info = unit.ask_info(timeout)
            except ManagementTimeout as exc:
                kind, what = unit.what_answers(isinstance(exc, NotFirmware))
                if kind == "silent":
                    return {"port": port, "kind": "unknown", "error": "nothing answers"}
                return {"port": port, "kind": PROBE_KINDS[kind], **({"device": what} if what else {})}
            return {
                "port": port,
                "kind": "soma",
                "serial": info.serial,
                "firmware": info.firmware_version,
                "firmware_hash": info.firmware_hash,
                "protocol_hash": f"{info.protocol_hash:08x}",
                "protocol_matches": info.protocol_hash == host_protocol_hash(),
            }
    except (SomaError, DeviceError) as exc:
        return {"port": port, "kind": "unknown", "error": str(exc)}
