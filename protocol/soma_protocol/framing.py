"""Serial framing for management frames (host side).

Same rules as `firmware/frame_link.py`, written for CPython's strengths (split and
regular expressions instead of a byte loop); the tests hold both to the same output
on arbitrary line noise.
"""

import re
from collections.abc import Iterable

from .schema import FRAME_BODY_MAX, FRAME_CONTROL_LIMIT, FRAME_ESCAPE, FRAME_ESCAPE_XOR, FRAME_FLAG

_FLAG = bytes([FRAME_FLAG])
_NEEDS_ESCAPE = re.compile(b"[\\x00-\\x%02x\\x%02x\\x%02x]" % (FRAME_CONTROL_LIMIT - 1, FRAME_ESCAPE, FRAME_FLAG))
_RAW_CONTROL = re.compile(b"[\\x00-\\x%02x]" % (FRAME_CONTROL_LIMIT - 1))
_ESCAPED_PAIR = re.compile(b"\\x%02x(.)" % FRAME_ESCAPE, re.DOTALL)
_LEGAL_AFTER_ESCAPE = frozenset([*range(FRAME_CONTROL_LIMIT), FRAME_ESCAPE, FRAME_FLAG])


def _escape(match: re.Match[bytes]) -> bytes:
    return bytes([FRAME_ESCAPE, match[0][0] ^ FRAME_ESCAPE_XOR])


def encode(body: Iterable[int]) -> bytes:
    """One frame on the line: FLAG, escaped body, FLAG."""
    return _FLAG + _NEEDS_ESCAPE.sub(_escape, bytes(body)) + _FLAG


def _unescape_piece(piece: bytes, body_max: int) -> bytes | None:
    """The body carried between two flags, or None if the line bytes are not a valid frame."""
    # A raw control byte is line noise; a trailing ESCAPE means ESCAPE FLAG, an abort.
    if _RAW_CONTROL.search(piece) or piece[-1] == FRAME_ESCAPE:
        return None
    legal = True

    def unescape(match: re.Match[bytes]) -> bytes:
        nonlocal legal
        byte = match[1][0] ^ FRAME_ESCAPE_XOR
        legal = legal and byte in _LEGAL_AFTER_ESCAPE
        return bytes([byte])

    body = _ESCAPED_PAIR.sub(unescape, piece)
    if not legal or len(body) > body_max:
        return None
    return body


class FrameDecoder:
    """Reassembles frame bodies from chunks of line bytes; drops noise, resyncs on FLAG."""

    def __init__(self, body_max: int = FRAME_BODY_MAX) -> None:
        self.body_max = body_max
        self._pending = b""
        self._overflowed = False
        self.frames = 0
        self.dropped = 0

    def feed(self, data: Iterable[int]) -> list[bytes]:
        """Feed line bytes; return the list of complete frame bodies they finished."""
        pieces = bytes(data).split(_FLAG)
        bodies: list[bytes] = []
        for index, piece in enumerate(pieces):
            if index == 0:
                piece = self._pending + piece
            if index == len(pieces) - 1:
                self._hold(piece)
                break
            overflowed, self._overflowed = self._overflowed, False
            if not piece:
                continue
            body = None if overflowed else _unescape_piece(piece, self.body_max)
            if body is None:
                self.dropped += 1
                continue
            self.frames += 1
            bodies.append(body)
        return bodies

    def _hold(self, piece: bytes) -> None:
        # An unfinished frame larger than any escaped body can be is already lost:
        # keep memory bounded by dropping its bytes until the next FLAG.
        if len(piece) > 2 * self.body_max or self._overflowed:
            self._overflowed = True
            self._pending = b""
        else:
            self._pending = piece
