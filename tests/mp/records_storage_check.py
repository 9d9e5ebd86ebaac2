"""FlashStorage checks that run unchanged under MicroPython and CPython."""

from storage import TMP_SUFFIX, FlashStorage


def _state(fs, name):
    """[content as text or None, exists, temporary exists]"""
    data = fs.read(name)
    return [None if data is None else data.decode(), data is not None, fs.read(name + TMP_SUFFIX) is not None]


def check(root):
    """Exercise every FlashStorage method under `root`; return a JSON-able report."""
    fs = FlashStorage(root)
    out = {"missing": _state(fs, "x")}
    fs.remove("x")  # missing: no error
    fs.write_atomic("x", b"old")
    fs.write_atomic("x", bytearray(b"new"))
    out["replaced"] = _state(fs, "x")
    with fs.open("x" + TMP_SUFFIX, "wb") as f:
        f.write(b"partial write cut by a power loss")
    out["leftover_tmp"] = _state(fs, "x")
    fs.write_atomic("x", memoryview(b"newest!")[:6])
    out["tmp_overwritten"] = _state(fs, "x")
    fs.write_atomic("x", b"yyy")  # replaces the existing x
    out["renamed"] = _state(fs, "x") + _state(fs, "y")
    with fs.open("x", "rb") as f:
        out["open_read"] = f.read().decode()
    fs.remove("x")
    out["removed"] = _state(fs, "x")
    return out
