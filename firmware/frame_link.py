"""Serial framing for management frames on the USB console (firmware side).

A frame on the line is FLAG, the escaped body, FLAG (PPP/HDLC-style escaping of
every byte below 0x20 and of FLAG and ESCAPE; see protocol/soma_protocol/schema.py).
Encoded frames therefore never carry a REPL control byte, CR or LF. Decoding works
byte by byte into one preallocated buffer and allocates nothing.
"""

from micropython import const

from wire_codec import FRAME_BODY_MAX, FRAME_CONTROL_LIMIT, FRAME_ESCAPE, FRAME_ESCAPE_XOR, FRAME_FLAG

_FLAG = const(0x7E)
_ESCAPE = const(0x7D)
_XOR = const(0x20)
_CONTROL_LIMIT = const(0x20)
# The literals above keep the byte loop free of global lookups; they must match the schema.
assert (_FLAG, _ESCAPE, _XOR, _CONTROL_LIMIT) == (FRAME_FLAG, FRAME_ESCAPE, FRAME_ESCAPE_XOR, FRAME_CONTROL_LIMIT)


def encoded_size_max(body_len):
    """Worst-case encoded size of a body: every byte escaped, plus two flags."""
    return 2 * body_len + 2


def encode_into(body, length, out):
    """Escape body[:length] into `out` between two flags; return the encoded length."""
    if len(out) < 2 * length + 2:
        raise ValueError("frame output buffer too small")
    out[0] = _FLAG
    n = 1
    for i in range(length):
        byte = body[i]
        if byte < _CONTROL_LIMIT or byte == _FLAG or byte == _ESCAPE:
            out[n] = _ESCAPE
            out[n + 1] = byte ^ _XOR
            n += 2
        else:
            out[n] = byte
            n += 1
    out[n] = _FLAG
    return n + 1


class FrameReader:
    """Reassembles frame bodies from line bytes; drops noise and resynchronises on FLAG."""

    def __init__(self, body_max=FRAME_BODY_MAX):
        self.body = bytearray(body_max)
        self.length = 0
        self._escaped = False
        self._dropping = False
        self.frames = 0
        self.dropped = 0  # frames lost to raw control bytes, bad escapes, aborts or overflow

    def _drop(self):
        if not self._dropping:
            self.dropped += 1
        self._dropping = True
        self._escaped = False
        self.length = 0

    def push(self, byte):
        """Feed one byte; return the body length when a frame just ended, else -1.

        The body is self.body[:length] until the next push.
        """
        if byte == _FLAG:
            length = self.length
            if self._escaped:  # ESCAPE FLAG aborts the frame (HDLC abort)
                self.dropped += 1
                length = 0
            elif self._dropping:
                length = 0
            self._escaped = False
            self._dropping = False
            self.length = 0
            if length:
                self.frames += 1
                return length
            return -1
        if self._dropping:
            return -1
        if byte < _CONTROL_LIMIT:  # raw control bytes never occur inside a frame
            self._drop()
            return -1
        if self._escaped:
            byte ^= _XOR
            if byte >= _CONTROL_LIMIT and byte != _FLAG and byte != _ESCAPE:
                self._drop()
                return -1
            self._escaped = False
        elif byte == _ESCAPE:
            self._escaped = True
            return -1
        if self.length == len(self.body):
            self._drop()
            return -1
        self.body[self.length] = byte
        self.length += 1
        return -1
