"""Management protocol client: requests and responses, telemetry and events, over any byte
transport (a serial port, a virtual bed's console).

The transport gives `read(timeout) -> bytes` (what arrived, possibly nothing) and
`write(bytes)`. Frames are decoded with the host codec; a response is matched to its
request by sequence number, an error frame becomes DeviceError, and telemetry and event
frames are kept for whoever asks.
"""

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from soma_protocol import codec, framing
from soma_protocol.enums import ErrorCode, FaultCode, FrameKind, MessageId

KINDS = {kind.name: int(kind) for kind in FrameKind}
MESSAGES = {message.name: int(message) for message in MessageId}
ERROR_CODES = {int(code): code.name for code in ErrorCode}
FAULT_CODES = {fault.name: int(fault) for fault in FaultCode}
# A telemetry field's index in the frame's flat values ("outputs_permille.3" for an array's item).
TELEMETRY = {leaf.path: i for i, leaf in enumerate(codec.MESSAGES["telemetry"].fields)}
ALL_FAULTS = 0xFFFFFFFF
BUSY_ATTEMPTS = 4
BUSY_PAUSE_S = 0.5
RESTART_SLACK_MS = 100  # an uptime this far behind the time passed is a new boot
# Payload values are the codec's decoded construct values (ints, bytes, lists): `Any`.
Uptime = tuple[int, float, int]  # what uptime() returns and await_new_boot takes


def fault_names(mask: int) -> list[str]:
    """The faults whose bits are set in a fault mask (info, telemetry, fault_clear)."""
    return [name for name, code in FAULT_CODES.items() if mask >> code & 1]


def fault_mask(names: Iterable[str]) -> int:
    """The fault mask of these fault names; ValueError names one that is not a fault."""
    mask = 0
    for name in names:
        if name not in FAULT_CODES:
            raise ValueError(f"no fault {name!r} (faults: {', '.join(FAULT_CODES)})")
        mask |= 1 << FAULT_CODES[name]
    return mask


class ManagementTimeout(TimeoutError):
    """No answer in time."""


class NotFirmware(ManagementTimeout):
    """The line answered with something other than frames: a REPL (echoing our request), not
    the Soma firmware."""


NOT_PROVISIONED = 0xFFFF  # a refusal's detail: the request needs the sanctuary key (soma provision)
THERMISTORS = ("pad_left", "pad_right", "ambient")  # CalibrationData's curves, in order
ZONES = ("left", "right")


def _faults_latched(mask: int) -> str:
    names = ", ".join(fault_names(mask)) or "none latched: its self-checks have not passed yet"
    return f"its safety supervisor holds every output off (faults: {names}; `soma faults` shows them)"


def _not_provisioned_or(other: Callable[[int], str]) -> Callable[[int], str]:
    return lambda detail: (
        "it is not provisioned: `soma provision` first" if detail == NOT_PROVISIONED else other(detail)
    )


# What a refused request's detail says, per request (the firmware's `Refused(detail)`).
REFUSALS: dict[str, Callable[[int], str]] = {
    "bench_override": _faults_latched,
    "autotune": _faults_latched,
    "set_targets": lambda detail: (
        f"the {ZONES[detail - 1] if 0 < detail <= len(ZONES) else detail} zone's set point is outside "
        "the configured range (`soma info` shows the configuration)"
    ),
    "calibration_write": lambda detail: (
        f"the {THERMISTORS[detail - 1] if 0 < detail <= len(THERMISTORS) else detail} thermistor's curve strays "
        "too far from the nominal one: a calibration may not blind the overtemperature trip"
    ),
    "calibration_commit": lambda detail: "no calibration is staged: write one first",
    "program_upload": _not_provisioned_or(
        lambda version: f"it holds a newer program (v{version}): upload with a higher --version"
    ),
    "sanctuary_status": _not_provisioned_or(lambda detail: f"detail {detail}"),
}


class DeviceError(RuntimeError):
    """The unit answered a request with an error frame: `message` (the request's name),
    `code` (an ErrorCode name), `detail`, and `reason`, the detail in words."""

    def __init__(self, message: str, code: int, detail: int) -> None:
        super().__init__(f"{message}: {ERROR_CODES.get(code, code)} (detail {detail})")
        self.message = message
        self.code = ERROR_CODES.get(code, code)
        self.detail = detail

    @property
    def reason(self) -> str:
        words = REFUSALS.get(self.message)
        return words(self.detail) if words and self.code == "refused" else f"{self.code} (detail {self.detail})"


class ManagementClient:
    def __init__(self, read: Callable[[float], bytes], write: Callable[[bytes], object]) -> None:
        self._read = read
        self._write = write
        self._decoder = framing.FrameDecoder()
        self._seq = 0
        self._answers: dict[int, tuple[int, list[Any]]] = {}
        self.telemetry: deque[list[Any]] = deque(maxlen=1000)  # value lists, newest last
        self.events: deque[tuple[str, list[Any]]] = deque(maxlen=1000)  # (message name, value list)
        self.bad_frames = 0
        self.echoes = 0  # request frames received: a unit never sends them, a REPL echoes ours

    def request(
        self, message: str, values: Sequence[object] = (), timeout: float = 2.0, noise_fails: bool = False
    ) -> list[Any]:
        """Send one request; return the response's payload values. With `noise_fails`, a
        line that answers with anything but frames fails at once (NotFirmware): a quick probe.
        A unit too busy for it (its heap too full for the handler's code just then, nothing
        done) is asked again a few times."""
        for attempt in range(BUSY_ATTEMPTS):
            try:
                return self._request_once(message, values, timeout, noise_fails)
            except DeviceError as exc:
                if exc.code != "busy" or attempt == BUSY_ATTEMPTS - 1:
                    raise
                time.sleep(BUSY_PAUSE_S)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _request_once(self, message: str, values: Sequence[object], timeout: float, noise_fails: bool) -> list[Any]:
        self._seq = (self._seq + 1) & 0xFFFF or 1
        seq = self._seq
        msg = MESSAGES[message]
        payload = codec.encode(codec.payload_name(KINDS["request"], msg), list(values))
        self._write(framing.encode(codec.encode("frame", [KINDS["request"], seq, msg, payload])))
        deadline = time.monotonic() + timeout
        noise = self._noise()
        while seq not in self._answers:
            left = deadline - time.monotonic()
            if noise_fails and self._noise() > noise:
                raise NotFirmware(f"no answer to {message}: the line answers with something else (a REPL?)")
            if left <= 0:
                raise ManagementTimeout(f"no answer to {message} within {timeout:g} s")
            self.poll(min(left, 0.05))
        kind, values = self._answers.pop(seq)
        if kind == KINDS["error"]:
            raise DeviceError(message, values[0], values[1])
        return values

    def uptime(self) -> Uptime:
        """(the unit's uptime in ms, the host's monotonic time of the answer, boot events
        received so far): what await_new_boot compares with."""
        uptime_ms = self.request_fields("info", timeout=2.0)["uptime_ms"]
        return uptime_ms, time.monotonic(), self._boot_events()

    def _boot_events(self) -> int:
        return sum(1 for name, _ in self.events if name == "boot_event")

    def await_new_boot(self, before: Uptime, timeout: float = 20.0) -> dict[str, Any]:
        """The unit's info fields once it answers from a boot newer than `before` (an
        uptime() read before asking it to reset): its boot event came, or its uptime fell
        behind the time that passed. ManagementTimeout after `timeout` seconds."""
        uptime_ms, at, boot_events = before
        while time.monotonic() - at < timeout:
            try:
                info = self.request_fields("info", timeout=0.25)
            except (ManagementTimeout, DeviceError):  # still down, or busy starting
                continue
            expected_ms = uptime_ms + (time.monotonic() - at) * 1000  # had it not restarted
            if self._boot_events() > boot_events or info["uptime_ms"] + RESTART_SLACK_MS < expected_ms:
                return info
            time.sleep(0.1)
        raise ManagementTimeout(f"the unit did not come back within {timeout:g} s of its reset")

    def provision(self, sanctuary_id: int, bed_id: int, key: bytes, timeout: float = 20.0) -> bytes:
        """Give the unit its sanctuary key and bed id; it restarts with them (its sanctuary
        part is built at boot): return the key id once it answers again."""
        before = self.uptime()
        key_id = self.request("provision_key", [sanctuary_id, bed_id, key], timeout=5)[0]
        self.await_new_boot(before, timeout)
        return key_id

    def request_fields(self, message: str, values: Sequence[object] = (), timeout: float = 2.0) -> dict[str, Any]:
        """request(), with the response as a dict of field name -> value (nested as declared)."""
        answer = self.request(message, values, timeout)
        return codec.nest(codec.payload_name(KINDS["response"], MESSAGES[message]), answer)

    def _noise(self) -> int:
        return self.bad_frames + self.echoes + self._decoder.dropped

    def poll(self, timeout: float = 0.0) -> None:
        """Take in whatever the unit sent (waiting up to `timeout` for the first bytes)."""
        for body in self._decoder.feed(self._read(timeout)):
            try:
                kind, seq, msg, payload = codec.decode("frame", body)
                values = codec.decode(codec.payload_name(kind, msg), payload)
            except codec.ProtocolError:
                self.bad_frames += 1
                continue
            if kind in (KINDS["response"], KINDS["error"]):
                self._answers[seq] = (kind, values)
            elif kind == KINDS["request"]:
                self.echoes += 1
            elif kind == KINDS["telemetry"]:
                self.telemetry.append(values)
            else:
                self.events.append((MessageId(msg).name if msg in MESSAGES.values() else str(msg), values))
