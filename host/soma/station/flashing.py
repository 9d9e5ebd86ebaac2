"""Flash a unit: compile, diff, send compressed, verify, switch atomically, confirm or roll back.

The unit's flash (see firmware/main.py, the boot loader) holds two slots; the flasher
writes the idle one while the active one stays whole, verifies every file's SHA-256 on
the unit, writes the slot's manifest last, and then switches boot.json in one rename to
a *trial* of the new slot. After a reset the new firmware must confirm itself (healthy
self-checks) within the bound; a trial slot that boots again unconfirmed is abandoned
by the boot loader for the previous slot, and the flasher reports the rollback.

Files unchanged since the active slot are copied on the unit; the changed ones cross the
line as one deflate stream, sent as raw bytes to code on the unit that reads its stdin:
no base64, no exec per chunk. The stream goes in blocks the unit acknowledges (at most
WINDOW blocks in flight, so a UART's receive buffer never overflows), and the few bytes
a line or a REPL would act on (Ctrl-A..E, CR, LF, ^Z, ^\\) are escaped, so neither a
terminal nor a REPL that a power cut left behind can take the stream for commands.
"""

import base64
import hashlib
import json
import re
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from soma_protocol import ir

from . import paths
from .errors import SomaError
from .firmware_build import compile_tree
from .management import ManagementTimeout

MPY_MAJOR = 6  # mpy-cross 1.29 emits .mpy v6.x: the unit's sys.implementation._mpy & 0xFF must match
BLOCK = 1024  # wire bytes per acknowledged block
WINDOW = 2  # blocks in flight
ACK = b"+"
ESCAPE = 0x1B  # the unit's _Wire looks for b'\\x1b'
_ESCAPED = re.compile(rb"[\x01-\x05\n\r\x1a-\x1c]")  # Ctrl-A..E, LF, CR, ^Z, ESC, ^\
# The decompressor allocates the window the stream's header names; the unit gets the
# largest it can allocate in one piece with WINDOW_SPARE bytes to spare (_window on the unit).
MIN_WINDOW_BITS, MAX_WINDOW_BITS = 9, 15
WINDOW_SPARE = 8192
CONFIRM_TIMEOUT_S = 20.0
BOOT_POLL_S = 0.05  # a request sent while the unit restarts is lost: ask again this often

# Runs on the unit (raw REPL): the flasher's helpers, defined once per session. The
# application's modules are dropped first so the transfer has the heap to itself.
# They cross the line compressed: _unit_helpers() wraps them in their own unpacker.
_DROP_APPLICATION = """
_g = globals()
for _k in list(_g):
    if not _k.startswith('_'):
        del _g[_k]
import sys, gc
for _m in list(sys.modules):
    del sys.modules[_m]
gc.collect()
import os, json, hashlib, io, deflate, binascii
"""
_UNIT_HELPERS = """
def _sha(p):
    h = hashlib.sha256()
    try:
        with open(p, 'rb') as f:
            while True:
                b = f.read(512)
                if not b:
                    break
                h.update(b)
    except OSError:
        return ''
    return binascii.hexlify(h.digest()).decode()
def _ls(d):
    try:
        return [n for n in os.listdir(d) if n != 'manifest.json']
    except OSError:
        return []
def _load(p):
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
def _state():
    s = _load('boot.json')
    m = _load('slot_' + s['slot'] + '/manifest.json') if s else None
    print(json.dumps({'state': s, 'manifest': m, 'mpy': sys.implementation._mpy,
                      'window': _window(), 'loader': _sha('main.py')}))
def _window():
    for bits in range(_MAX_BITS_, _MIN_BITS_ - 1, -1):
        gc.collect()
        try:
            bytearray((1 << bits) + _SPARE_)
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
        os.remove(d + '/manifest.json')
    except OSError:
        pass
    print(json.dumps({n: _sha(d + '/' + n) for n in _ls(d)}))
def _copy(src, dst):
    with open(src, 'rb') as a, open(dst, 'wb') as b:
        while True:
            c = a.read(512)
            if not c:
                break
            b.write(c)
class _Wire(io.IOBase):
    def __init__(self, size):
        self.left = size
        self.raw = bytearray(_BLOCK_)
        self.plain = bytearray(_BLOCK_)
        self.n = self.p = 0
        self.esc = False
    def readinto(self, b):
        while self.p == self.n:
            if not self.left:
                return 0
            self._block()
        k = min(len(b), self.n - self.p)
        b[:k] = memoryview(self.plain)[self.p:self.p + k]
        self.p += k
        return k
    def _block(self):
        k = min(self.left, _BLOCK_)
        raw = memoryview(self.raw)
        got = 0
        while got < k:
            got += sys.stdin.buffer.readinto(raw[got:k])
        self.left -= k
        sys.stdout.write('_ACK_')
        src, dst, i, m = self.raw, self.plain, 0, 0
        if self.esc:
            dst[0] = src[0] ^ 64
            i = m = 1
        esc = False
        while i < k:
            j = src.find(b'\\x1b', i, k)
            if j < 0:
                j = k
            dst[m:m + j - i] = raw[i:j]
            m += j - i
            if j >= k - 1:
                esc = j == k - 1
                break
            dst[m] = src[j + 1] ^ 64
            m += 1
            i = j + 2
        self.esc = esc
        self.n, self.p = m, 0
def _recv(size):
    z = deflate.DeflateIO(_Wire(size), deflate.ZLIB)
    files = json.loads(z.read(int.from_bytes(z.read(2), 'little')))
    mv = memoryview(bytearray(512))
    for path, n in files:
        with open(path, 'wb') as f:
            while n:
                got = z.readinto(mv[:min(n, 512)])
                if not got:
                    raise OSError('stream ended early')
                f.write(mv[:got])
                n -= got
def _rm(d, names):
    for n in names:
        os.remove(d + '/' + n)
def _write(path, text):
    with open(path + '.tmp', 'w') as f:
        f.write(text)
    os.rename(path + '.tmp', path)
def _finish(d, tree, firmware, protocol, loader, trial):
    h = {n: _sha(d + '/' + n) for n in _ls(d)}
    t = '{' + ', '.join('"%s": "%s"' % (n, h[n]) for n in sorted(h)) + '}'
    ok = binascii.hexlify(hashlib.sha256(t).digest()).decode() == tree
    if loader and _sha('main.py.new') != loader:
        ok = False
        h['main.py'] = ''
    if ok:
        _write(d + '/manifest.json', json.dumps({'files': h, 'firmware_hash': firmware, 'protocol_hash': protocol}))
        if loader:
            os.rename('main.py.new', 'main.py')
        _write('boot.json', trial)
    print(json.dumps({'ok': ok, 'files': {} if ok else h}))
"""
_SETTINGS = {"_BLOCK_": BLOCK, "_ACK_": ACK.decode(), "_SPARE_": WINDOW_SPARE}
_SETTINGS.update({"_MAX_BITS_": MAX_WINDOW_BITS, "_MIN_BITS_": MIN_WINDOW_BITS})
for _placeholder, _value in _SETTINGS.items():
    _UNIT_HELPERS = _UNIT_HELPERS.replace(_placeholder, str(_value))


@dataclass
class Image:
    """A compiled firmware tree ready to flash: file name -> bytes, and its manifest."""

    files: dict
    manifest: dict
    bootloader: bytes

    @classmethod
    def build(cls, source=None):
        source = Path(source or paths.firmware_dir())
        with tempfile.TemporaryDirectory(prefix="soma-image-") as out:
            compile_tree(out, source)
            files = {path.name: path.read_bytes() for path in sorted(Path(out).glob("*.mpy"))}
        hashes = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
        manifest = {
            "files": hashes,
            "firmware_hash": _tree_hash(hashes)[:16],
            "protocol_hash": f"{ir.protocol_hash():08x}",
        }
        return cls(files, manifest, (source / "main.py").read_bytes())

    @property
    def firmware_hash(self):
        return self.manifest["firmware_hash"]

    @property
    def tree_hash(self):
        return _tree_hash(self.manifest["files"])

    def install(self, flash_dir):
        """Write this image straight into a flash directory, confirmed in slot a: what a
        factory programmer leaves (the simulator's flashed units start like this)."""
        root = Path(flash_dir)
        slot = root / "slot_a"
        slot.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (slot / name).write_bytes(data)
        (slot / "manifest.json").write_text(json.dumps(self.manifest))
        (root / "main.py").write_bytes(self.bootloader)
        (root / "boot.json").write_text(json.dumps({"slot": "a", "state": "confirmed", "tries": 0}))


def _tree_hash(hashes):
    """SHA-256 over every file's name and SHA-256: the unit computes the same to verify."""
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()


@dataclass
class FlashResult:
    port: str
    serial: str
    status: str  # installed | unchanged | rolled_back
    firmware_hash: str
    slot: str
    files_sent: int
    bytes_sent: int
    seconds: float


def flash(link, image, progress=None, confirm_timeout=CONFIRM_TIMEOUT_S):
    """Flash `image` onto the unit behind `link` (a UnitLink); return a FlashResult."""
    started = time.monotonic()
    report = progress or (lambda done, total, what: None)
    running = _running_firmware(link)
    if running is not None and running[1].hex() == image.firmware_hash:
        # The very image, confirmed and running: nothing to do, and nothing interrupted.
        return FlashResult(link.port, _serial(running), "unchanged", image.firmware_hash, "", 0, 0, _since(started))
    with link.raw_repl():
        link.exec(_DROP_APPLICATION)
        link.exec(_unit_helpers())
        unit = json.loads(link.exec("_state()"))
        if unit["mpy"] & 0xFF != MPY_MAJOR:
            raise SomaError(f"{link.port}: the unit loads .mpy v{unit['mpy'] & 0xFF}, this build makes v{MPY_MAJOR}")
        state, active = unit["state"], unit["manifest"]
        if state and state.get("state") == "confirmed" and active == image.manifest:
            link.soft_reset()  # back to the application, untouched
            info = _info_when_up(link.management(), CONFIRM_TIMEOUT_S)
            if info is None:
                raise SomaError(f"{link.port}: the unit did not come back after its reset (timeout)")
            return FlashResult(
                link.port, _serial(info), "unchanged", image.firmware_hash, state["slot"], 0, 0, _since(started)
            )
        old_slot = state["slot"] if state else None
        new_slot = "b" if old_slot == "a" else "a"
        target = "slot_" + new_slot
        wanted = image.manifest["files"]
        old_files = (active or {}).get("files", {})
        present = json.loads(link.exec(f"_prepare({target!r})"))  # left by an interrupted flash
        stale = sorted(set(present) - set(wanted))
        if stale:
            link.exec(f"_rm({target!r}, {stale!r})")
        to_send = []
        for name, digest in wanted.items():
            if present.get(name) == digest:
                continue
            if old_files.get(name) == digest and old_slot:
                link.exec(f"_copy('slot_{old_slot}/{name}', '{target}/{name}')")
            else:
                to_send.append((f"{target}/{name}", image.files[name]))
        loader_hash = hashlib.sha256(image.bootloader).hexdigest()
        if unit["loader"] != loader_hash:
            to_send.append(("main.py.new", image.bootloader))  # renamed into place by the switch
        else:
            loader_hash = ""
        if not unit["window"]:
            needed = 2**MIN_WINDOW_BITS + WINDOW_SPARE
            raise SomaError(f"{link.port}: the unit has no {needed} bytes of heap free to unpack into")
        bytes_sent = _send(link, to_send, unit["window"], report) if to_send else 0
        trial = json.dumps({"slot": new_slot, "state": "trial", "tries": 0, "previous": old_slot})
        # Verify every file; only then the manifest, the boot loader and the switch.
        firmware, protocol = image.manifest["firmware_hash"], image.manifest["protocol_hash"]
        arguments = ", ".join(map(repr, (target, image.tree_hash, firmware, protocol, loader_hash, trial)))
        verdict = json.loads(link.exec(f"_finish({arguments})"))
        if not verdict["ok"]:
            found = verdict["files"]
            bad = sorted(name for name in {*wanted, *found} if found.get(name) != wanted.get(name))
            raise SomaError(f"{link.port}: verification failed on the unit for {', '.join(bad)}")
        link.soft_reset()
    status, info = _await_confirmation(link, image, confirm_timeout)
    files_sent = sum(1 for path, _ in to_send if path.startswith(target))
    return FlashResult(
        link.port, _serial(info), status, image.firmware_hash, new_slot, files_sent, bytes_sent, _since(started)
    )


def _send(link, files, window_bits, report):
    """Stream `files` [(path on the unit, bytes)] behind a header that lists them, as one
    compressed, escaped, acknowledged byte stream into the unit's _recv; return the bytes
    that crossed the line."""
    listing = json.dumps([[path, len(data)] for path, data in files]).encode()
    files = [("", len(listing).to_bytes(2, "little") + listing), *files]
    total = sum(len(data) for _, data in files)
    packer = zlib.compressobj(9, zlib.DEFLATED, window_bits)
    wire = _escape(packer.compress(b"".join(data for _, data in files)) + packer.flush())
    blocks = [wire[start : start + BLOCK] for start in range(0, len(wire), BLOCK)]

    def feed(serial):
        acked = 0
        for index, block in enumerate(blocks):
            if index >= WINDOW:
                answer = serial.read(1)
                if answer != ACK:
                    return answer  # the unit stopped (an error, or silence): let exec report it
                acked += 1
                report(min(total, total * acked // len(blocks)), total, "")
            serial.write(block)
        while acked < len(blocks):
            answer = serial.read(1)
            if answer != ACK:
                return answer
            acked += 1
        report(total, total, "")
        return b""

    link.exec(f"_recv({len(wire)})", feed=feed)
    return len(wire)


def _unit_helpers():
    """The helpers as code that unpacks and runs them on the unit (a third of the bytes)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, MIN_WINDOW_BITS)
    packed = base64.b64encode(packer.compress(_UNIT_HELPERS.encode()) + packer.flush()).decode()
    return f"exec(deflate.DeflateIO(io.BytesIO(binascii.a2b_base64({packed!r})), deflate.ZLIB).read())"


def _escape(data):
    return _ESCAPED.sub(lambda match: bytes((ESCAPE, match[0][0] ^ 0x40)), data)


def _await_confirmation(link, image, timeout):
    """('installed', info) once the new firmware reports itself confirmed; ('rolled_back',
    info) if the unit came back on its previous slot instead."""
    from soma_protocol import schema

    confirmed = int(schema.BootState.encmapping["confirmed"])
    rolled_back = int(schema.BootState.encmapping["rolled_back"])
    client = link.management()
    for attempt in range(2):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = _info_when_up(client, deadline - time.monotonic())
            if info is None:
                break
            if info[12] == confirmed and info[1].hex() == image.firmware_hash:
                return "installed", info
            if info[12] == rolled_back:
                return "rolled_back", info
            time.sleep(BOOT_POLL_S)
        if attempt == 0:
            # Never confirmed: a reset makes the boot loader abandon the trial slot.
            with link.raw_repl():
                pass
            link.soft_reset()
    raise SomaError(f"{link.port}: the unit did not come back after flashing (timeout)")


def _running_firmware(link):
    """The info of a Soma application running confirmed on the unit, or None (blank, at the
    REPL, or on trial)."""
    from soma_protocol import schema

    try:
        info = link.management().request("info", timeout=0.3, noise_fails=True)
    except ManagementTimeout:
        return None
    return info if info[12] == int(schema.BootState.encmapping["confirmed"]) else None


def _info_when_up(client, timeout):
    """The unit's info once its firmware answers (a request sent while it restarts is lost:
    ask again), or None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return client.request("info", timeout=min(BOOT_POLL_S, max(0.05, deadline - time.monotonic())))
        except ManagementTimeout:
            continue
    return None


def _serial(info):
    return info[3].decode(errors="replace")


def _since(started):
    return round(time.monotonic() - started, 3)
