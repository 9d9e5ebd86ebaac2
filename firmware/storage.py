"""Files for persistent records: one flat directory on the board's flash.

The ESP32 mounts littlefs, the sim backend and the tests use a host directory; this
module also runs under CPython. It uses only os.rename, os.remove and os.stat, which
all of them have. write_atomic relies on rename replacing an existing file in one
step: littlefs and POSIX rename do (FAT would not: MicroPython removes then renames).
"""

import os
from errno import ENOENT

TMP_SUFFIX = ".tmp"


class FlashStorage:
    """Files under `root`; "" or "." is the current directory."""

    def __init__(self, root=""):
        if root in ("", "."):
            root = ""
        elif root[-1] != "/":
            root += "/"
        self._root = root

    def open(self, name, mode="rb"):
        return open(self._root + name, mode)

    def remove(self, name):
        """Remove `name`; a missing file is not an error."""
        try:
            os.remove(self._root + name)
        except OSError as e:
            if e.errno != ENOENT:
                raise

    def read(self, name):
        """The whole of `name` as bytes, or None if it does not exist."""
        try:
            f = open(self._root + name, "rb")
        except OSError as e:
            if e.errno != ENOENT:
                raise
            return None
        with f:
            return f.read()

    def write_atomic(self, name, data):
        """Replace `name` by `data`: after a power cut it holds the old or the new data whole.

        The data goes to name + TMP_SUFFIX first; a temporary left by an earlier cut is
        ignored by readers and overwritten here.
        """
        tmp = name + TMP_SUFFIX
        with open(self._root + tmp, "wb") as f:
            f.write(data)
            f.flush()
        os.rename(self._root + tmp, self._root + name)  # replaces `name` in one step
