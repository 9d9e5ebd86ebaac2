"""Management protocol server on the USB serial line: frames in, handlers, frames out.

Requests are reassembled by frame_link, checked by the generated codec and dispatched to
a handler per message id; every request gets a response or an error frame with the same
sequence number. Telemetry and events carry the link's own sequence numbers.
"""

from frame_link import FrameReader, encode_into, encoded_size_max
from wire_codec import (
    ERROR_CODE_BAD_FRAME,
    ERROR_CODE_BAD_PAYLOAD,
    ERROR_CODE_REFUSED,
    ERROR_CODE_UNKNOWN_MESSAGE,
    ERROR_LAYOUT,
    FRAME,
    FRAME_BODY_MAX,
    FRAME_KIND_ERROR,
    FRAME_KIND_EVENT,
    FRAME_KIND_REQUEST,
    FRAME_KIND_RESPONSE,
    FRAME_KIND_TELEMETRY,
    MANAGEMENT_PAYLOADS,
    MESSAGE_ID_TELEMETRY,
    ProtocolError,
    pack,
    unpack,
)

_FRAME_OVERHEAD = 11  # frame header and CRC around a payload
_READ_CHUNK = 64  # bytes taken from the line per poll: bounds the time one tick spends here


class Refused(Exception):
    """A handler declines a valid request (the safety supervisor or the unit's state says no)."""

    def __init__(self, detail=0):
        super().__init__(detail)
        self.detail = detail


class ManagementLink:
    def __init__(self, console, handlers):
        self._console = console
        self._handlers = handlers  # message id -> handler(request values) -> response values
        self._reader = FrameReader()
        self._chunk = bytearray(_READ_CHUNK)
        self._payload = bytearray(FRAME_BODY_MAX - _FRAME_OVERHEAD)
        self._body = bytearray(FRAME_BODY_MAX)
        self._line = bytearray(encoded_size_max(FRAME_BODY_MAX))
        self._seq = 0
        self.requests = 0
        self.errors = 0

    def poll(self):
        """Take what is waiting on the line and answer every complete request."""
        count = self._console.read_into(self._chunk)
        for i in range(count):
            length = self._reader.push(self._chunk[i])
            if length > 0:
                self._answer(length)

    def _answer(self, length):
        try:
            kind, seq, msg, payload = unpack(FRAME, self._reader.body, 0, length)
        except ProtocolError:
            self._error(0, 0, ERROR_CODE_BAD_FRAME, length)
            return
        self.requests += 1
        handler = self._handlers.get(msg)
        layout = MANAGEMENT_PAYLOADS.get((FRAME_KIND_REQUEST, msg))
        if kind != FRAME_KIND_REQUEST or handler is None or layout is None:
            self._error(
                seq, msg, ERROR_CODE_UNKNOWN_MESSAGE if kind == FRAME_KIND_REQUEST else ERROR_CODE_BAD_FRAME, kind
            )
            return
        try:
            request = unpack(layout, payload)
        except ProtocolError:
            self._error(seq, msg, ERROR_CODE_BAD_PAYLOAD, len(payload))
            return
        try:
            response = handler(request)
        except Refused as refusal:
            self._error(seq, msg, ERROR_CODE_REFUSED, refusal.detail)
            return
        except (ValueError, ProtocolError):  # request values the unit cannot take
            self._error(seq, msg, ERROR_CODE_BAD_PAYLOAD, 0)
            return
        self.send(FRAME_KIND_RESPONSE, seq, msg, response)

    def _error(self, seq, msg, code, detail):
        self.errors += 1
        self._send(FRAME_KIND_ERROR, seq, msg, ERROR_LAYOUT, [code, detail & 0xFFFF])

    def send(self, kind, seq, msg, values):
        """Send one frame whose payload layout the schema gives for (kind, msg)."""
        self._send(kind, seq, msg, MANAGEMENT_PAYLOADS[(kind, msg)], values)

    def _send(self, kind, seq, msg, layout, values):
        size = pack(layout, self._payload, 0, values)
        body = pack(FRAME, self._body, 0, [kind, seq, msg, memoryview(self._payload)[:size]])
        self._console.write(self._line, encode_into(self._body, body, self._line))

    def notify(self, kind, msg, values):
        """An unsolicited frame (telemetry or event) with the link's own sequence number."""
        self._seq = (self._seq + 1) & 0xFFFF
        self.send(kind, self._seq, msg, values)

    def telemetry(self, values):
        self.notify(FRAME_KIND_TELEMETRY, MESSAGE_ID_TELEMETRY, values)

    def event(self, msg, values):
        self.notify(FRAME_KIND_EVENT, msg, values)
