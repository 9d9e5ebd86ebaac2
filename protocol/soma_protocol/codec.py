"""Host codec: parse and build any schema message with `construct`.

Values travel between the host codec, the generated firmware codec and the tests as
flat lists in wire order (constants left out), the same lists `wire_codec.pack` takes
and `wire_codec.unpack` returns; `render` turns them into readable JSON (enum and
flag names, nested structs, bytes as hex).

Interpreted construct parsing is used on purpose for untrusted bytes: compiled
parsers raise bare `struct.error` on truncated input.
"""

import io
import struct
from collections.abc import Callable, Sequence
from typing import Any

import construct as cs

from . import ir, schema


class ProtocolError(ValueError):
    """Bytes or values that do not fit the Soma schema (host side)."""


NODES = {**schema.MESSAGES, **ir.payload_structs()}
MESSAGES = ir.all_messages()

# Values are whatever construct parses and builds (ints, floats, bytes, Containers): `Any`.


def _node(name: str) -> cs.Construct:
    try:
        return NODES[name]
    except KeyError:
        raise ProtocolError(f"unknown message {name!r}") from None


def parse(name: str, data: bytes | bytearray) -> Any:
    """Parse bytes that must hold exactly one `name` message; return a Container."""
    node = _node(name)
    stream = io.BytesIO(bytes(data))
    try:
        obj = node.parse_stream(stream)
    except (cs.ConstructError, struct.error, ValueError, OverflowError) as exc:
        raise ProtocolError(f"{name}: {_short(exc)}") from None
    rest = len(stream.read())
    if rest:
        raise ProtocolError(f"{name}: {rest} trailing bytes")
    return obj


def build(name: str, obj: Any) -> bytes:
    """Build a `name` message from a (nested) dict; return bytes."""
    try:
        return _node(name).build(obj)
    except (cs.ConstructError, struct.error, ValueError, OverflowError, TypeError, KeyError) as exc:
        raise ProtocolError(f"{name}: {_short(exc)}") from None


def _short(exc: Exception) -> str:
    """One line: construct's reason, then where in the message it happened."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    path = getattr(exc, "path", None)
    if path and len(lines) > 1:
        return f"{lines[-1]} (at {path.replace('(parsing) -> ', '').replace('(building) -> ', '')})"
    return lines[-1]


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else obj[part]
    return obj


def _plain(leaf: ir.Leaf, value: Any) -> Any:
    """A parsed construct value as the generated codec sees it."""
    if leaf.flags is not None:
        return sum(bit for flag, bit in leaf.flags.items() if value[flag])
    if leaf.enum is not None:
        return int(value)
    return value


def values_of(name: str, obj: Any) -> list[Any]:
    """The flat value list of a parsed Container, in wire order."""
    return [_plain(leaf, _get(obj, leaf.path)) for leaf in MESSAGES[name].fields]


def nest(name: str, values: Sequence[Any]) -> dict[str, Any]:
    """A flat value list as the nested dict construct builds from."""
    fields = MESSAGES[name].fields
    if len(values) != len(fields):
        raise ProtocolError(f"{name}: {len(values)} values, expected {len(fields)}")
    root: dict[str, Any] = {}
    for leaf, value in zip(fields, values, strict=True):
        *parents, last = leaf.path.split(".")
        node = root
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return _listify(root)  # a dict: struct members have names, not indices


def _listify(node: Any) -> Any:
    """Turn dicts keyed "0".."n" (array elements) into lists."""
    if not isinstance(node, dict):
        return node
    items = {key: _listify(value) for key, value in node.items()}
    if items and all(key.isdigit() for key in items):
        return [items[str(index)] for index in range(len(items))]
    return items


def decode(name: str, data: bytes | bytearray) -> list[Any]:
    """Bytes -> flat value list, through construct."""
    return values_of(name, parse(name, data))


def encode(name: str, values: Sequence[Any]) -> bytes:
    """Flat value list -> bytes, through construct."""
    return build(name, nest(name, values))


def payload_name(kind: int, msg: int) -> str:
    """Name of the payload carried by a management frame of (kind, msg) ids."""
    if kind == schema.enum_value(schema.FrameKind, "error"):
        return _names[id(schema.ERROR_PAYLOAD)]
    kind_name = schema.FrameKind.decmapping.get(kind)
    msg_name = schema.MessageId.decmapping.get(msg)
    node = schema.MANAGEMENT_PAYLOADS.get((str(kind_name), str(msg_name)))
    if node is None:
        raise ProtocolError(f"frame: no payload defined for kind {kind} message {msg}")
    return _names[id(node)]


def record_payload_name(kind: int) -> str:
    node = schema.RECORD_PAYLOADS.get(str(schema.RecordKind.decmapping.get(kind)))
    if node is None:
        raise ProtocolError(f"record: unknown kind {kind}")
    return _names[id(node)]


_names = {id(node): name for name, node in ir.payload_structs().items()}


def render(name: str, values: Sequence[Any], unpack: Callable[[str, bytes], list[Any]] = decode) -> dict[str, Any]:
    """Readable JSON-ready dict of a flat value list; frames and records include their payloads
    (decoded with `unpack(name, bytes)`, construct by default)."""
    out: dict[str, Any] = {}
    for leaf, value in zip(MESSAGES[name].fields, values, strict=True):
        out[leaf.path] = _render_leaf(leaf, value)
    tree = nest(name, list(out.values()))
    if name in ("frame", "record"):
        try:
            inner = payload_name(values[0], values[2]) if name == "frame" else record_payload_name(values[0])
            tree["payload"] = render(inner, unpack(inner, values[3]), unpack)
            tree["payload_type"] = inner
        except ProtocolError as exc:
            tree["payload_error"] = str(exc)
    return tree


def _render_leaf(leaf: ir.Leaf, value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if leaf.flags is not None:
        return [flag for flag, bit in leaf.flags.items() if value & bit]
    if leaf.enum is not None:
        return leaf.enum.get(value, value)
    return value


def identify(data: bytes | bytearray) -> str:
    """Which top-level message these bytes claim to be, from their first bytes."""
    if data[:1] == bytes([schema.FRAME_FLAG]):
        return "line"  # a frame as sent on the serial line: flags and escapes
    if data[: len(schema.RECORD_MAGIC)] == schema.RECORD_MAGIC:
        return "record"
    if data[:1] == bytes([schema.RADIO_BEACON]):
        return "beacon"
    if data[:1] == bytes([schema.PROTOCOL_VERSION]):
        return "frame"
    raise ProtocolError(f"unrecognised first byte 0x{data[0]:02x}" if data else "no bytes")
