"""Runs on the unit, in the raw REPL, during `soma flash` (soma.station.flashing): the
flasher's helpers, defined once per flash after a soft reset (boot.py ran, main.py did not)
and after what boot.py left was dropped from the heap.

The host sends this file's text compressed, with the parameter block below replaced by its
own values (flashing.receiver_source: the names must match, or the host refuses to start).
Each helper prints one JSON line for the host, or streams acknowledgements (_recv).

A host that dies or goes silent leaves these helpers waiting on stdin, which allocates
nothing: the REPL keeper that Soma's boot.py started at that soft reset (firmware/board.py,
REPL_IDLE_MS) resets the unit once REPL_IDLE_MS have passed without a byte. Nothing here
switches slots before _finish has verified every file, so the unit boots its confirmed slot
again, with the idle slot left unconfirmed.
"""

import binascii
import gc
import hashlib
import io
import json
import os
import sys

import deflate
from micropython import const

# parameters: the host writes its own values here (soma.station.flashing.RECEIVER_PARAMETERS)
_BLOCK = const(1024)  # wire bytes per acknowledged block
_ACK = "+"  # written once a block is read
_SPARE = const(8192)  # heap left free beside the decompressor's window
_MAX_BITS = const(15)  # the largest deflate window tried
_MIN_BITS = const(9)  # the smallest
# end of parameters


def _sha(p):
    h = hashlib.sha256()
    try:
        with open(p, "rb") as f:
            while True:
                b = f.read(512)
                if not b:
                    break
                h.update(b)
    except OSError:
        return ""
    return binascii.hexlify(h.digest()).decode()


def _ls(d):
    try:
        return [n for n in os.listdir(d) if n != "manifest.json"]
    except OSError:
        return []


def _load(p):
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _state(root):
    s = _load("boot.json")
    m = _load("slot_" + s["slot"] + "/manifest.json") if s else None
    abi = sys.implementation._mpy
    h = {n: _sha(n) for n in root}
    print(json.dumps({"state": s, "manifest": m, "mpy": abi, "window": _window(), "root": h}))


# The transfer's room, found by _window and held in one piece until _recv needs it (or
# _finish, when no file crosses the line): the helpers run between them would otherwise
# leave their objects in it.
_held = None


def _window():
    global _held
    for bits in range(_MAX_BITS, _MIN_BITS - 1, -1):
        _held = None
        gc.collect()
        try:
            _held = bytearray((1 << bits) + _SPARE)
            return bits
        except MemoryError:
            pass
    return 0


def _prepare(d):
    try:
        os.mkdir(d)
    except OSError:
        pass
    try:
        os.remove(d + "/manifest.json")
    except OSError:
        pass
    print(json.dumps({n: _sha(d + "/" + n) for n in _ls(d)}))


def _copy(src, dst):
    with open(src, "rb") as a, open(dst, "wb") as b:
        while True:
            c = a.read(512)
            if not c:
                break
            b.write(c)


class _Wire(io.IOBase):
    """The escaped, acknowledged byte stream on stdin, unescaped, as a readable stream."""

    def __init__(self, size):
        self.left = size
        self.raw = bytearray(_BLOCK)
        self.plain = bytearray(_BLOCK)
        self.n = self.p = 0
        self.esc = False

    def readinto(self, b):
        while self.p == self.n:
            if not self.left:
                return 0
            self._block()
        k = min(len(b), self.n - self.p)
        b[:k] = memoryview(self.plain)[self.p : self.p + k]
        self.p += k
        return k

    def _block(self):
        k = min(self.left, _BLOCK)
        raw = memoryview(self.raw)
        got = 0
        while got < k:
            got += sys.stdin.buffer.readinto(raw[got:k]) or 0  # blocks: never None here
        self.left -= k
        sys.stdout.write(_ACK)
        src, dst, i, m = self.raw, self.plain, 0, 0
        if self.esc:
            dst[0] = src[0] ^ 64
            i = m = 1
        esc = False
        while i < k:
            j = src.find(b"\x1b", i, k)
            if j < 0:
                j = k
            dst[m : m + j - i] = raw[i:j]
            m += j - i
            if j >= k - 1:
                esc = j == k - 1
                break
            dst[m] = src[j + 1] ^ 64
            m += 1
            i = j + 2
        self.esc = esc
        self.n, self.p = m, 0


def _release():
    """Give back the room _window holds (the stream, or _finish when nothing was sent)."""
    global _held
    _held = None
    gc.collect()


def _recv(size):
    _release()
    z = deflate.DeflateIO(_Wire(size), deflate.ZLIB)
    files = json.loads(z.read(int.from_bytes(z.read(2), "little")))
    mv = memoryview(bytearray(512))
    for path, n in files:
        with open(path, "wb") as f:
            while n:
                got = z.readinto(mv[: min(n, 512)])
                if not got:
                    raise OSError("stream ended early")
                f.write(mv[:got])
                n -= got


def _rm(d, names):
    for n in names:
        os.remove(d + "/" + n)


def _write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


def _finish(d, tree, firmware, protocol, root, trial):
    _release()
    h = {n: _sha(d + "/" + n) for n in _ls(d)}
    t = "{" + ", ".join('"%s": "%s"' % (n, h[n]) for n in sorted(h)) + "}"
    ok = binascii.hexlify(hashlib.sha256(t.encode()).digest()).decode() == tree
    for n in root:  # root files sent as NAME.new: NAME -> their SHA-256
        if _sha(n + ".new") != root[n]:
            ok = False
            h[n] = ""
    if ok:
        _write(d + "/manifest.json", json.dumps({"files": h, "firmware_hash": firmware, "protocol_hash": protocol}))
        for n in sorted(root):  # boot.py before main.py: a cut between leaves the old loader
            os.rename(n + ".new", n)
        _write("boot.json", trial)
    print(json.dumps({"ok": ok, "files": {} if ok else h}))
