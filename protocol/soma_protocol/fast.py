"""Host fast path for fixed-size messages (the beacon): one precompiled struct.Struct.

Derived from the same schema description as the generated firmware codec and held
to the same results by the tests; many times faster than interpreted construct.
"""

import operator
import struct
from binascii import crc32
from collections.abc import Sequence
from typing import Any

from . import ir
from .codec import ProtocolError

# Values are whatever struct packs and unpacks (ints, floats, bytes): `Any`.


class FixedLayout:
    """Pack and unpack one fixed-size message as a flat value list (constants left out)."""

    def __init__(self, name: str) -> None:
        msg = ir.all_messages()[name]
        if msg.fixed_size is None or len(msg.fields) < 2:
            raise ValueError(f"{name} is not a fixed-size message of several fields")
        self.name = name
        self.size = msg.fixed_size
        self._sealed = msg.sealed
        self._body_size = self.size - (4 if msg.sealed else 0)
        letters = "".join(f"{leaf.size}s" if leaf.fmt == "s" else leaf.fmt for leaf in msg.leaves)
        self._struct = struct.Struct("<" + letters + ("I" if msg.sealed else ""))
        self._consts = [(i, leaf.value) for i, leaf in enumerate(msg.leaves) if leaf.kind == "const"]
        self._pick_fields = operator.itemgetter(*(i for i, leaf in enumerate(msg.leaves) if leaf.kind != "const"))
        self._masks = [(k, sum(leaf.flags.values())) for k, leaf in enumerate(msg.fields) if leaf.flags]
        self._byte_fields = [(k, leaf.size, leaf.path) for k, leaf in enumerate(msg.fields) if leaf.kind == "bytes"]

    def unpack(self, data: bytes | bytearray) -> list[Any]:
        """Bytes -> value list; ProtocolError on a wrong length, CRC or constant."""
        if len(data) != self.size:
            raise ProtocolError(f"{self.name}: length {len(data)}, expected {self.size}")
        raw = self._struct.unpack(data)
        if self._sealed and crc32(memoryview(data)[: self._body_size]) != raw[-1]:
            raise ProtocolError(f"{self.name}: bad CRC")
        for at, value in self._consts:
            if raw[at] != value:
                raise ProtocolError(f"{self.name}: value {at} is not the constant {value!r}")
        values = list(self._pick_fields(raw))
        for index, mask in self._masks:
            values[index] &= mask
        return values

    def pack(self, values: Sequence[Any]) -> bytes:
        """Value list -> bytes (CRC appended when sealed); ProtocolError on bad values."""
        for index, size, path in self._byte_fields:
            if not isinstance(values[index], bytes | bytearray) or len(values[index]) != size:
                raise ProtocolError(f"{self.name}.{path}: needs {size} bytes")
        full = list(values)
        for at, value in self._consts:
            full.insert(at, value)
        try:
            data = bytearray(self._struct.pack(*full, *((0,) if self._sealed else ())))
        except struct.error as exc:
            raise ProtocolError(f"{self.name}: {exc}") from None
        if self._sealed:
            struct.pack_into("<I", data, self._body_size, crc32(memoryview(data)[: self._body_size]))
        return bytes(data)
