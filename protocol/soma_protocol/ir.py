"""Walk the construct schema into a flat, neutral description of every message.

The generator (`codegen`), the protocol hash and the host's field normalisation all
read this description, so they cannot disagree about a message's layout. Only the
constructs listed in `_leaves` are understood; anything else stops the walk with
`UnsupportedConstruct` naming the construct and where it stands.
"""

import hashlib
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import construct as cs

from . import schema


class UnsupportedConstruct(Exception):
    """The schema uses a construct the generator cannot mirror."""


@dataclass(frozen=True)
class Leaf:
    """One value on the wire.

    kind is one of:
      "int"   fixed-width integer or float (`fmt` is its struct letter)
      "const" a fixed value the decoder checks (`fmt` letter or "s" for bytes)
      "bytes" fixed-length bytes (`size`)
      "blob"  length-prefixed bytes (`fmt` is the prefix's struct letter)
    """

    path: str
    kind: str
    fmt: str
    size: int
    value: object = None
    enum: dict[int, str] | None = field(default=None, compare=False, hash=False)  # value -> name
    flags: dict[str, int] | None = field(default=None, compare=False, hash=False)  # name -> bit

    @property
    def param(self) -> str:
        return self.path.replace(".", "_")


@dataclass(frozen=True)
class Message:
    name: str
    leaves: tuple[Leaf, ...]
    sealed: bool  # followed by the CRC-32 of everything before it

    @property
    def fields(self) -> tuple[Leaf, ...]:
        """The leaves a caller supplies and gets back (constants excluded)."""
        return tuple(leaf for leaf in self.leaves if leaf.kind != "const")

    @property
    def fixed_size(self) -> int | None:
        """Total size in bytes, CRC included, or None if a blob makes it variable."""
        if any(leaf.kind == "blob" for leaf in self.leaves):
            return None
        return self.min_size

    @property
    def min_size(self) -> int:
        return sum(leaf.size for leaf in self.leaves) + (4 if self.sealed else 0)

    @property
    def max_size(self) -> int:
        total = self.min_size
        for leaf in self.leaves:
            if leaf.kind == "blob":
                total += (1 << (8 * leaf.size)) - 1
        return total


_INT_LETTERS = "bBhHiIqQfd"


def _format_letter(node: cs.Construct, where: str) -> str:
    if not isinstance(node, cs.FormatField):
        raise UnsupportedConstruct(f"{where}: {type(node).__name__} where a fixed-width number must be")
    fmt = node.fmtstr.replace("L", "I").replace("l", "i")
    if len(fmt) != 2 or fmt[0] != "<" or fmt[1] not in _INT_LETTERS:
        raise UnsupportedConstruct(f"{where}: format {fmt!r} (only little-endian {_INT_LETTERS})")
    return fmt[1]


def _leaves(node: cs.Construct, path: str, where: str) -> Iterator[Leaf]:
    """Yield the leaves of `node`, whose dotted name is `path`."""
    here = f"{where}.{path}" if path else where
    if isinstance(node, cs.Renamed):
        yield from _leaves(node.subcon, f"{path}.{node.name}" if path else node.name, where)
    elif isinstance(node, cs.Struct):
        for sub in node.subcons:
            if not isinstance(sub, cs.Renamed) or not sub.name:
                raise UnsupportedConstruct(f"{here}: unnamed struct member {sub!r}")
            yield from _leaves(sub, path, where)
    elif isinstance(node, cs.Const):
        if isinstance(node.subcon, cs.FormatField):
            letter = _format_letter(node.subcon, here)
            yield Leaf(path, "const", letter, struct.calcsize("<" + letter), node.value)
        elif isinstance(node.subcon, cs.Bytes) and isinstance(node.subcon.length, int):
            yield Leaf(path, "const", "s", node.subcon.length, bytes(node.value))
        else:
            raise UnsupportedConstruct(f"{here}: Const over {node.subcon!r}")
    elif isinstance(node, cs.FlagsEnum):
        letter = _format_letter(node.subcon, here)
        yield Leaf(path, "int", letter, struct.calcsize("<" + letter), flags=dict(node.flags))
    elif isinstance(node, cs.Enum):
        letter = _format_letter(node.subcon, here)
        yield Leaf(
            path,
            "int",
            letter,
            struct.calcsize("<" + letter),
            enum={int(v): str(k) for k, v in node.encmapping.items()},
        )
    elif isinstance(node, cs.FormatField):
        letter = _format_letter(node, here)
        yield Leaf(path, "int", letter, struct.calcsize("<" + letter))
    elif isinstance(node, cs.Bytes):
        if not isinstance(node.length, int):
            raise UnsupportedConstruct(f"{here}: Bytes with a computed length")
        yield Leaf(path, "bytes", "s", node.length)
    elif isinstance(node, cs.Prefixed):
        if node.subcon is not cs.GreedyBytes or node.includelength:
            raise UnsupportedConstruct(f"{here}: Prefixed over {node.subcon!r}")
        letter = _format_letter(node.lengthfield, here)
        if letter not in "BHI":
            raise UnsupportedConstruct(f"{here}: Prefixed length {letter!r} must be unsigned")
        yield Leaf(path, "blob", letter, struct.calcsize("<" + letter))
    elif isinstance(node, cs.Array):
        if not isinstance(node.count, int) or node.discard:
            raise UnsupportedConstruct(f"{here}: Array needs a fixed count")
        for index in range(node.count):
            yield from _leaves(node.subcon, f"{path}.{index}", where)
    else:
        raise UnsupportedConstruct(f"{here}: {type(node).__name__} is not supported by the generator")


def describe(name: str, node: cs.Construct) -> Message:
    """Describe one top-level message or payload struct."""
    sealed = isinstance(node, schema.Crc32Sealed)
    body = node.body if sealed else node
    if not isinstance(body, cs.Struct):
        raise UnsupportedConstruct(f"{name}: top level must be a Struct, not {type(body).__name__}")
    leaves = tuple(_leaves(body, "", name))
    paths = [leaf.path for leaf in leaves]
    if len(set(paths)) != len(paths):
        raise UnsupportedConstruct(f"{name}: duplicate field names")
    return Message(name, leaves, sealed)


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def payload_structs() -> dict[str, cs.Struct]:
    """Every payload struct named in the schema's registries, by snake_case name."""
    named = {
        id(value): _snake(key)
        for key, value in vars(schema).items()
        if isinstance(value, cs.Struct) and not key.isupper()  # skip registry aliases such as ERROR_PAYLOAD
    }
    used = list(schema.MANAGEMENT_PAYLOADS.values()) + list(schema.RECORD_PAYLOADS.values()) + [schema.ERROR_PAYLOAD]
    result: dict[str, cs.Struct] = {}
    for node in used:
        if id(node) not in named:
            raise UnsupportedConstruct(f"payload {node!r} is not bound to a name in schema.py")
        result[named[id(node)]] = node
    return result


def all_messages() -> dict[str, Message]:
    """Top-level messages first, then payloads: name -> Message."""
    out = {name: describe(name, node) for name, node in schema.MESSAGES.items()}
    for name, node in payload_structs().items():
        out[name] = describe(name, node)
    return out


def _enum_table(node: cs.Enum | cs.FlagsEnum) -> dict[str, int]:
    if isinstance(node, cs.FlagsEnum):
        return {str(k): int(v) for k, v in node.flags.items()}
    return {str(k): int(v) for k, v in node.encmapping.items()}


def canonical() -> dict[str, Any]:  # plain JSON data
    """The schema as plain data: what the protocol hash is taken over."""
    messages = {
        name: {
            "sealed": msg.sealed,
            "leaves": [[leaf.path, leaf.kind, leaf.fmt, leaf.size, _jsonable(leaf.value)] for leaf in msg.leaves],
        }
        for name, msg in all_messages().items()
    }
    payload_names = {id(node): name for name, node in payload_structs().items()}
    return {
        "constants": dict(schema.CONSTANTS),
        "enums": {name: _enum_table(node) for name, node in schema.ENUMS.items()},
        "messages": messages,
        "management": sorted(
            [kind, msg, payload_names[id(node)]] for (kind, msg), node in schema.MANAGEMENT_PAYLOADS.items()
        ),
        "records": {kind: payload_names[id(node)] for kind, node in schema.RECORD_PAYLOADS.items()},
        "error_payload": payload_names[id(schema.ERROR_PAYLOAD)],
    }


def _jsonable(value: object) -> object:
    return value.hex() if isinstance(value, bytes) else value


def protocol_hash() -> int:
    """32-bit hash of the canonical schema: changes whenever any byte layout does."""
    text = json.dumps(canonical(), sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")
