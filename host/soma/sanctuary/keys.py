"""Sanctuary key files: 32 random bytes as hex, readable by their owner only."""

import os
import secrets

from soma.errors import SomaError, one_line
from soma_protocol.constants import KEY_LEN

KEY_BYTES = KEY_LEN
KEY_FILE_MAX = 4 * KEY_BYTES  # bytes read at most: the hex digits, a newline, some blanks


def read_key(path: str | os.PathLike[str]) -> bytes:
    """The key in a key file; SomaError naming the file if it is not one. Only the first
    KEY_FILE_MAX bytes are read: a device or a huge file is refused, not read for ever."""
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read(KEY_FILE_MAX + 1)
        if len(text) > KEY_FILE_MAX:
            raise ValueError(f"longer than a key file ({KEY_BYTES * 2} hex digits)")
        key = bytes.fromhex(text.strip())
    except (OSError, ValueError) as exc:
        raise SomaError(f"cannot read key file {path}: {one_line(exc)}") from None
    if len(key) != KEY_BYTES:
        raise SomaError(f"key file {path}: {len(key)} bytes, expected {KEY_BYTES}")
    return key


def new_key(path: str | os.PathLike[str]) -> bytes:
    """A new random key, written to a new file `path` (mode 0600); an existing file is never
    overwritten (SomaError)."""
    if os.path.exists(path):
        raise SomaError(f"{path} exists: refusing to overwrite a key (use --key)")
    key = secrets.token_bytes(KEY_BYTES)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SomaError(f"{path} exists: refusing to overwrite a key (use --key)") from None
    except OSError as exc:
        raise SomaError(f"cannot write key file {path}: {exc.strerror or exc}") from None
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key.hex() + "\n")
    return key
