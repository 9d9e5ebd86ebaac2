"""soma decode: print any Soma frame as JSON."""

import json
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import click

from soma.errors import SomaError, one_line

EPILOG = """\b
Examples:
  soma decode b10101000200...          a beacon, a frame body or a record, as hex
  soma decode --key sanctuary.key HEX  also check a beacon's authentication tag
  soma decode --firmware HEX           decode with the firmware's codec under MicroPython
  soma decode - < frames.txt           one hex frame per line from stdin
"""


@click.command(epilog=EPILOG)
@click.argument("hex_or_dash")
@click.option("--message", "-m", help="Decode as this message (beacon, frame, record or a payload name).")
@click.option(
    "--key", "key_file", type=click.Path(dir_okay=False), help="Sanctuary key file (hex) to check beacon tags."
)
@click.option("--firmware", is_flag=True, help="Use the generated firmware codec under MicroPython.")
def command(hex_or_dash: str, message: str | None, key_file: str | None, firmware: bool) -> None:
    """Decode HEX (or '-' for stdin, one frame per line) and print JSON."""
    from soma.sanctuary.keys import read_key
    from soma_protocol import auth, codec, framing

    key = read_key(key_file) if key_file else None
    lines = sys.stdin.read().splitlines() if hex_or_dash == "-" else [hex_or_dash]
    lines = [line.strip() for line in lines if line.strip()]
    if not lines:
        raise SomaError("decode: no input")
    service = None
    if firmware:
        from soma.crosscheck.firmware_codec import FirmwareCodec, FirmwareProtocolError

        service = FirmwareCodec()
        errors = (codec.ProtocolError, FirmwareProtocolError)

        def unpack(name: str, data: bytes) -> list[Any]:
            return service.unpack(name, data)
    else:
        errors = (codec.ProtocolError,)
        unpack = codec.decode
    failures = 0
    try:
        for line in lines:
            try:
                for document in _decode_line(line, message, key, unpack, codec, framing, auth):
                    click.echo(json.dumps(document))
            except (ValueError, *errors) as exc:
                failures += 1
                click.echo(f"soma: error: {one_line(exc)}", err=True)
    finally:
        if service is not None:
            service.close()
    if failures:
        sys.exit(2)


def _decode_line(
    line: str,
    message: str | None,
    key: bytes | None,
    unpack: Callable[[str, bytes], list[Any]],
    codec: ModuleType,
    framing: ModuleType,
    auth: ModuleType,
) -> Iterator[dict[str, Any]]:
    try:
        data = bytes.fromhex(line)
    except ValueError:
        raise ValueError(f"not hex: {line[:40]!r}") from None
    name = message or codec.identify(data)
    if name == "line":
        decoder = framing.FrameDecoder()
        bodies = decoder.feed(data)
        if not bodies or decoder.dropped:
            raise ValueError("no intact frame between flags")
        pieces = [("frame", body) for body in bodies]
    else:
        pieces = [(name, data)]
    for piece_name, piece in pieces:
        values = unpack(piece_name, piece)
        document = {"message": piece_name, "fields": codec.render(piece_name, values, unpack)}
        if piece_name == "beacon" and key is not None:
            document["authenticated"] = auth.BeaconVerifier(key, values[0]).check(piece)[0] == "accepted"
        yield document
