"""A unit session: one line to one unit (its REPL and its management protocol), the unit's
identity asked once, and every failure a user can act on as one line that names the fix.

    with open_unit(port) as unit:          # asks info, refuses another protocol
        unit.info.serial, unit.info["fault_mask"]
        unit.client.request(...)           # the one management client of the line
    with open_unit(port, firmware=False) as unit:   # a blank unit too (soma flash)
        unit.info                          # None: no firmware answered
        with unit.raw_repl(): ...

Inside the block (and while opening) a unit that stops answering, refuses a request or
answers with a REPL becomes a SomaError (exit status 2) naming the port and what to do.
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import serial

from soma.errors import SomaError
from soma.link.management import DeviceError, ManagementTimeout, NotFirmware
from soma.link.unit import UnitLink
from soma_protocol import codec, ir
from soma_protocol.enums import BootState

INFO_TIMEOUT_S = 3.0  # a running unit answers info at once; this is for a slow line
PROBE_TIMEOUT_S = 0.3  # "is firmware running?" where a blank unit is expected too
PORTS_HINT = "is this the right port? (soma ports lists them)"
FLASH_HINT = "soma flash"
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
        import time

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
        """SomaError unless the unit speaks this soma's protocol (the payloads' layout depends on it)."""
        ours, theirs = host_protocol_hash(), self.info.protocol_hash if self.info else None
        if theirs is not None and theirs != ours:
            raise SomaError(
                f"{self.port}: protocol hash mismatch: the unit speaks {theirs:08x}, this soma {ours:08x}: "
                f"flash it with {FLASH_HINT} (or use the soma that matches its firmware)"
            )

    # ---- the REPL side of the line
    def raw_repl(self, attempts: int = 3) -> AbstractContextManager[UnitLink]:
        self._known = False  # whatever ran is interrupted
        return self.link.raw_repl(attempts)

    def exec(self, code: str | bytes, timeout: int = 30, feed: Callable[[serial.Serial], bytes] | None = None) -> bytes:
        return self.link.exec(code, timeout=timeout, feed=feed)

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
            except NotFirmware:
                raise
            except ManagementTimeout:
                raise SomaError(
                    f"{port}: no Soma unit answers: no answer to info within {info_timeout:g} s: {PORTS_HINT}"
                ) from None
            unit.check_protocol()
        else:
            unit.firmware_info()
        yield unit


@contextmanager
def unit_errors(port: str) -> Iterator[None]:
    """A unit that answers with a REPL, stops answering or refuses, as one line with its fix."""
    try:
        yield
    except NotFirmware:
        raise SomaError(
            f"{port}: no Soma unit answers: a MicroPython REPL does, but no Soma firmware answers "
            f"(a blank unit?): install it with {FLASH_HINT}"
        ) from None
    except ManagementTimeout as exc:
        raise SomaError(f"{port}: the unit stopped answering ({exc}): is it still connected and powered?") from None
    except DeviceError as exc:
        raise SomaError(f"{port}: error from the unit: {exc}{_device_hint(exc.code)}") from None
    except serial.SerialException as exc:
        raise SomaError(f"{port}: the line failed ({exc}): is the unit still connected?") from None


def _device_hint(code: object) -> str:
    hints: dict[object, str] = {
        "busy": ": it is too busy just now, try again",
        "refused": ": the unit's safety supervisor or state says no (soma faults shows latched faults)",
        "unknown_message": f": its firmware does not know this request: update it with {FLASH_HINT}",
        "bad_payload": f": its firmware reads this request differently: update it with {FLASH_HINT}",
        "storage": ": it could not write its flash storage",
    }
    return hints.get(code, "")


def probe(port: str, timeout: float = 1.0) -> dict[str, Any]:
    """What answers on `port`, leniently (any protocol, no error raised): a JSON-ready dict
    with kind soma (and its serial, firmware, hashes), micropython (a REPL: blank), or
    unknown (and why)."""
    try:
        with UnitLink(port) as link:
            unit = Unit(link)
            try:
                info = unit.ask_info(timeout)
            except ManagementTimeout:  # NotFirmware too: try the REPL
                with link.raw_repl(attempts=1):
                    pass
                return {"port": port, "kind": "micropython"}
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
