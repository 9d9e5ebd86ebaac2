"""Files the host writes for people: whole or not at all; and the documents people write
for it (programs, bench plans): read only up to a size, so a device or a huge file is
refused, not read for ever."""

import json
import os
import sys
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from soma.errors import SomaError

_UMASK = os.umask(0)  # read once, at import (before any thread): os.umask only reads by setting
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK  # what open() would give a new file: mkstemp's are 0600


def write_atomically(path: str | os.PathLike[str], write: Callable[[BinaryIO], object], what: str = "file") -> Path:
    """Write `path` through `write(binary_file)` into a temporary file beside it, then rename
    it over `path`: a reader never sees half a file, and no temporary file survives a failure.
    An OSError becomes a SomaError naming the path and `what` it is."""
    target = Path(path)
    partial = None
    try:
        fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(partial, target)
        partial = None
    except OSError as exc:
        raise SomaError(f"{target}: cannot write the {what} ({exc.strerror or exc})") from None
    finally:
        if partial is not None and os.path.exists(partial):
            os.unlink(partial)
    return target


DOCUMENT_MAX_BYTES = 64 * 1024  # a program or a plan is a few KiB


def read_document(
    path: str | os.PathLike[str], what: str, error: type[SomaError] = SomaError, limit: int = DOCUMENT_MAX_BYTES
) -> Any:
    """The data of a TOML file (JSON if it is named .json) of at most `limit` bytes; an
    `error` naming the path and `what` the file should be if it cannot be read or parsed."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = f.read(limit + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    if len(raw) > limit:
        raise error(f"{path}: larger than {limit >> 10} KiB, too large for a {what}")
    kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
    try:
        text = raw.decode()
        return json.loads(text) if kind == "JSON" else tomllib.loads(text)
    except UnicodeDecodeError:
        raise error(f"{path}: not a text file (not UTF-8)") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: not a {kind} file: {exc}") from None
    except ValueError:  # Python's limit on converting long digit strings
        raise error(f"{path}: a number longer than {sys.get_int_max_str_digits()} digits") from None
    except RecursionError:
        raise error(f"{path}: nested too deep for a {what}") from None
