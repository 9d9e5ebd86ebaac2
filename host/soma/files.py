"""Files the host writes for people: whole or not at all."""

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

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
