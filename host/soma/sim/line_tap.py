"""What a virtual bed's serial line tells its safety oracle (safety_oracle.py).

The tap hears both directions of the line (VirtualBed's relay hands it every chunk as it
passes) and decodes the management frames in them: the host's requests that ask for heat
(intents), the programs the unit accepted (a program spreads by radio: the world gives it to
every bed's oracle), and the latched fault masks the firmware reports. Anything else on the
line (the REPL, a flash transfer, noise, a frame cut by a restart) is passed over: nothing the
line carries can raise into the relay.

It runs in the relay's thread; the world's thread takes what it heard from the deques (safe
between two threads) at its next serve, so the oracle is only ever called from the world.
"""

from collections import deque

from soma.link.management import KINDS, MESSAGES, TELEMETRY
from soma_protocol import codec, framing
from soma_protocol.enums import OutputChannel
from soma_protocol.fast import FixedLayout

_REQUEST, _RESPONSE, _ERROR = KINDS["request"], KINDS["response"], KINDS["error"]
_TELEMETRY, _EVENT = KINDS["telemetry"], KINDS["event"]
_HEAT_REQUESTS = {MESSAGES[name] for name in ("set_targets", "program_upload", "autotune", "bench_override")}
# The unit's messages the tap reads: (frame kind, message id). Errors are read whatever their message.
_REPORTS = {
    (_TELEMETRY, MESSAGES["telemetry"]),
    (_EVENT, MESSAGES["fault_event"]),
    (_EVENT, MESSAGES["boot_event"]),
    (_RESPONSE, MESSAGES["info"]),
    (_RESPONSE, MESSAGES["fault_clear"]),
    (_RESPONSE, MESSAGES["sanctuary_status"]),
    (_RESPONSE, MESSAGES["program_upload"]),
}
_DRIVES = {int(OutputChannel.drive_left), int(OutputChannel.drive_right)}
_TELEMETRY_LAYOUT = FixedLayout("telemetry")  # ten times every second from every bed: the fast path
_TELEMETRY_MASK = TELEMETRY["fault_mask"]
_TELEMETRY_GLOBAL = TELEMETRY["global_time_us"]
_PENDING_MAX = 8  # program uploads awaiting their answer (a host that never reads them stays bounded)


class LineTap:
    def __init__(self) -> None:
        self.intents: deque[float] = deque()  # host times the host asked for heat
        self.reports: deque[tuple[float, int]] = deque()  # (host time, latched fault mask reported)
        self.programs: deque[tuple[float, float]] = deque()  # (start, end) host times of accepted programs
        self._from_host = framing.FrameDecoder()
        self._from_bed = framing.FrameDecoder()
        self._latched = 0  # the mask as the unit's reports so far make it
        self._global: tuple[int, float] | None = None  # (global us, host time) the line last showed
        self._uploads: dict[int, tuple[int, int, float]] = {}  # seq -> (start us, duration s, host time asked)

    def heard(self, data: bytes, from_bed: bool, at: float) -> None:
        """Line bytes passing at host time `at`, from the unit (`from_bed`) or from the host."""
        decoder, take = (self._from_bed, self._report) if from_bed else (self._from_host, self._request)
        for body in decoder.feed(data):
            # The frame's kind and message (bytes 1 and 4) say whether it matters before any decoding.
            if len(body) > 4:
                try:
                    take(body, body[1], body[4], at)
                except codec.ProtocolError:
                    pass  # a frame that does not decode is noise, as the firmware takes it

    def _request(self, body: bytes, kind: int, msg: int, at: float) -> None:
        if kind != _REQUEST or msg not in _HEAT_REQUESTS:
            return
        _, seq, _, payload = codec.decode("frame", body)
        request = codec.parse(codec.payload_name(kind, msg), payload)
        if msg == MESSAGES["set_targets"]:
            asks = bool(request.left_mc or request.right_mc)  # 0 turns a zone off
        elif msg == MESSAGES["bench_override"]:
            asks = int(request.channel) in _DRIVES and request.level_permille > 0 and request.duration_ms > 0
        else:
            asks = True  # a program or an autotune heats
        if msg == MESSAGES["program_upload"]:
            if len(self._uploads) >= _PENDING_MAX:
                self._uploads.pop(next(iter(self._uploads)))
            self._uploads[seq] = (request.start_us, request.duration_s, at)
        if asks:
            self.intents.append(at)

    def _report(self, body: bytes, kind: int, msg: int, at: float) -> None:
        if kind != _ERROR and (kind, msg) not in _REPORTS:
            return
        _, seq, _, payload = codec.decode("frame", body)
        if kind == _TELEMETRY:
            values = _TELEMETRY_LAYOUT.unpack(payload)
            self._saw_global_time(values[_TELEMETRY_GLOBAL], at)
            self._reported(values[_TELEMETRY_MASK], at)
            return
        if kind == _ERROR:
            self._uploads.pop(seq, None)  # refused: no program runs
            return
        fields = codec.parse(codec.payload_name(kind, msg), payload)
        if msg == MESSAGES["fault_event"]:
            bit = 1 << int(fields.code)
            self._reported(self._latched | bit if fields.active else self._latched & ~bit, at)
        elif msg == MESSAGES["boot_event"]:
            self._reported(0, at)  # a new boot latches nothing yet
        elif msg == MESSAGES["info"]:
            self._reported(fields.fault_mask, at)
        elif msg == MESSAGES["fault_clear"]:
            self._reported(fields.remaining_mask, at)
        elif msg == MESSAGES["sanctuary_status"]:
            self._saw_global_time(fields.global_time_us, at)
        elif seq in self._uploads:  # a program upload the unit accepted
            start_us, duration_s, asked_at = self._uploads.pop(seq)
            start = asked_at
            if self._global is not None:  # the program's start on the sanctuary's clock, in host time
                global_us, seen_at = self._global
                start = seen_at + (start_us - global_us) / 1e6
            self.programs.append((start, start + duration_s))

    def _reported(self, mask: int, at: float) -> None:
        self._latched = mask
        self.reports.append((at, mask))

    def _saw_global_time(self, global_us: int, at: float) -> None:
        if global_us:  # 0: the unit has no global time yet
            self._global = (global_us, at)
