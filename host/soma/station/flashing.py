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

A flasher that dies mid-flash leaves the unit in the raw REPL, the receiver waiting for
bytes; the unit's REPL keeper resets it REPL_IDLE_MS (firmware/board.py, 30 s) after the
last byte, and it boots its confirmed slot (boot.json is switched only at the end). The
files run from the flash root (firmware_build.ROOT_FILES: boot.py, main.py) go as
NAME.new, renamed into place with the switch.
"""

import base64
import hashlib
import json
import os
import re
import tempfile
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from soma import paths
from soma.errors import SomaError
from soma.link.serial_link import console_lines
from soma.link.session import Unit, UnitInfo
from soma.station.firmware_build import ROOT_FILES, compile_tree
from soma_protocol import ir
from soma_protocol.enums import BootState

if TYPE_CHECKING:
    import serial

    from soma.link.unit import UnitLink

# progress(done, total, what): bytes sent so far of the total to send.
Progress = Callable[[int, int, str], object]

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
# A rollback's reason: the failed boot's last console lines, without the REPL's own.
BOOT_OUTPUT_LINES = 12
SOFT_REBOOT = "soft reboot"  # "MPY: soft reboot", a board's first line after Ctrl-D
REPL_NOISE = re.compile(r'^(>+|>>> .*|raw REPL; CTRL-B to exit|MicroPython .*|Type "help\(\)" for more information\.)$')
BOOT_POLL_S = 0.05  # a request sent while the unit restarts is lost: ask again this often

# Runs on the unit (raw REPL): the flasher's helpers, defined once per session, after a
# soft reset (no application ran). What boot.py left in globals and sys.modules is dropped
# first so the transfer has the heap to itself (the keeper's thread runs on regardless).
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
# The helpers themselves: a MicroPython source file of this package (linted and type-checked
# like the firmware), sent with its parameter block set to these values (receiver_source()).
RECEIVER = Path(__file__).resolve().parent.parent / "mp" / "flash_receiver.py"
RECEIVER_PARAMETERS = {
    "_BLOCK": BLOCK,
    "_ACK": ACK.decode(),
    "_SPARE": WINDOW_SPARE,
    "_MAX_BITS": MAX_WINDOW_BITS,
    "_MIN_BITS": MIN_WINDOW_BITS,
}
_PARAMETER_BLOCK = re.compile(r"^# parameters:.*\n((?:.*\n)*?)# end of parameters\n", re.M)
_PARAMETER_LINE = re.compile(r"^(\w+) = (.*?)(?:  #.*)?$")


def receiver_source(parameters: Mapping[str, object] | None = None, path: str | os.PathLike[str] = RECEIVER) -> str:
    """The receiver's code as the unit runs it: the parameter block set to `parameters`
    (default RECEIVER_PARAMETERS), whose names must be exactly the block's; the module
    docstring, comment lines and blank lines left out (they would only cross the line)."""
    import ast

    parameters = RECEIVER_PARAMETERS if parameters is None else parameters
    text = Path(path).read_text()
    block = _PARAMETER_BLOCK.search(text)
    if block is None:
        raise RuntimeError(f"{path}: no '# parameters:' ... '# end of parameters' block")
    lines = block[1].splitlines()
    names = [match[1] for match in map(_PARAMETER_LINE.match, lines) if match]
    if len(names) != len(lines) or sorted(names) != sorted(parameters):
        raise RuntimeError(f"{path}: the parameter block names {names}, the host sets {sorted(parameters)}")
    settings = "".join(f"{name} = {_parameter(value)}\n" for name, value in parameters.items())
    text = text[: block.start()] + settings + text[block.end() :]
    docstring = ast.parse(text).body[0]
    if isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant):
        text = "\n".join(text.splitlines()[docstring.end_lineno :])
    return "".join(line + "\n" for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def _parameter(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"a receiver parameter is an int or a str, not {value!r}")
    return f"const({value})" if isinstance(value, int) else repr(value)


_UNIT_HELPERS = receiver_source()


@dataclass
class Image:
    """A compiled firmware tree ready to flash: file name -> bytes, and its manifest."""

    files: dict[str, bytes]
    manifest: dict[str, Any]  # the slot's manifest.json
    root: dict[str, bytes]  # the files run as source from the flash root (firmware_build.ROOT_FILES)

    @classmethod
    def build(cls, source: str | os.PathLike[str] | None = None) -> Self:
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
        # main.py, the boot loader, must be there; boot.py may not (a tree from before it).
        present = [name for name in ROOT_FILES if name == "main.py" or (source / name).exists()]
        return cls(files, manifest, {name: (source / name).read_bytes() for name in present})

    @property
    def firmware_hash(self) -> str:
        return self.manifest["firmware_hash"]

    @property
    def tree_hash(self) -> str:
        return _tree_hash(self.manifest["files"])

    def install(self, flash_dir: str | os.PathLike[str]) -> None:
        """Write this image straight into a flash directory, confirmed in slot a: what a
        factory programmer leaves (the simulator's flashed units start like this)."""
        root = Path(flash_dir)
        slot = root / "slot_a"
        slot.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (slot / name).write_bytes(data)
        (slot / "manifest.json").write_text(json.dumps(self.manifest))
        for name, data in self.root.items():
            (root / name).write_bytes(data)
        (root / "boot.json").write_text(json.dumps({"slot": "a", "state": "confirmed", "tries": 0}))


def _tree_hash(hashes: Mapping[str, str]) -> str:
    """SHA-256 over every file's name and SHA-256: the unit computes the same to verify."""
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()


@dataclass
class FlashResult:
    port: str
    serial: str
    status: str  # installed | unchanged | restarted (unchanged, was stopped at the REPL) | rolled_back
    firmware_hash: str
    slot: str
    files_sent: int
    bytes_sent: int
    seconds: float
    boot_output: str = ""  # rolled_back: the failed boot's console output, why it failed


def flash(
    session: "Unit | UnitLink",
    image: Image,
    progress: Progress | None = None,
    confirm_timeout: float = CONFIRM_TIMEOUT_S,
    on_first_write: Callable[[], object] | None = None,
) -> FlashResult:
    """Flash `image` onto the unit of `session` (soma.session.session.open_unit(port,
    firmware=False), or a bare UnitLink); return a FlashResult. One session, one management
    client: the info it asked as it opened tells whether the image already runs.
    `on_first_write()` is called once, just before the first write to the unit (for the records:
    a host that dies after it leaves a flash the next contact decides)."""
    session = session if isinstance(session, Unit) else Unit(session)
    started = time.monotonic()
    report = progress or (lambda done, total, what: None)
    running = session.firmware_info()
    if running is not None and running.boot_state == BootState.confirmed:
        if running.firmware_hash == image.firmware_hash:
            # The very image, confirmed and running: nothing to do, and nothing interrupted.
            return FlashResult(
                session.port, running.serial, "unchanged", image.firmware_hash, "", 0, 0, _since(started)
            )
    with session.raw_repl():
        # A stopped application leaves its heap in pieces: the transfer could find no room
        # in one. Booted again without it, the unit gives the flasher the heap whole.
        session.restart_raw_repl()
        session.exec(_DROP_APPLICATION)
        session.exec(_unit_helpers())
        unit = json.loads(session.exec(f"_state({sorted(image.root)!r})"))
        if unit["mpy"] & 0xFF != MPY_MAJOR:
            raise SomaError(f"{session.port}: the unit loads .mpy v{unit['mpy'] & 0xFF}, this build makes v{MPY_MAJOR}")
        state, active = unit["state"], unit["manifest"]
        if state and state.get("state") == "confirmed" and active == image.manifest:
            session.soft_reset()  # back to the application, untouched (or restarted, if it was stopped)
            info = session.wait_info(CONFIRM_TIMEOUT_S, BOOT_POLL_S)
            if info is None:
                raise SomaError(f"{session.port}: the unit did not come back after its reset (timeout)")
            status = "unchanged" if running is not None else "restarted"
            return FlashResult(
                session.port, info.serial, status, image.firmware_hash, state["slot"], 0, 0, _since(started)
            )
        old_slot = state["slot"] if state else None
        new_slot = "b" if old_slot == "a" else "a"
        target = "slot_" + new_slot
        wanted = image.manifest["files"]
        old_files = (active or {}).get("files", {})
        if on_first_write:
            on_first_write()
        present = json.loads(session.exec(f"_prepare({target!r})"))  # left by an interrupted flash
        stale = sorted(set(present) - set(wanted))
        if stale:
            session.exec(f"_rm({target!r}, {stale!r})")
        to_send: list[tuple[str, bytes]] = []
        for name, digest in wanted.items():
            if present.get(name) == digest:
                continue
            if old_files.get(name) == digest and old_slot:
                session.exec(f"_copy('slot_{old_slot}/{name}', '{target}/{name}')")
            else:
                to_send.append((f"{target}/{name}", image.files[name]))
        root_sent: dict[str, str] = {}  # name -> SHA-256 of the root files sent, renamed into place by the switch
        for name, data in sorted(image.root.items()):
            digest = hashlib.sha256(data).hexdigest()
            if unit["root"][name] != digest:
                to_send.append((name + ".new", data))
                root_sent[name] = digest
        if not unit["window"]:
            needed = 2**MIN_WINDOW_BITS + WINDOW_SPARE
            raise SomaError(f"{session.port}: the unit has no {needed} bytes of heap free to unpack into")
        bytes_sent = _send(session, to_send, unit["window"], report) if to_send else 0
        trial = json.dumps({"slot": new_slot, "state": "trial", "tries": 0, "previous": old_slot})
        # Verify every file; only then the manifest, the boot loader and the switch.
        firmware, protocol = image.manifest["firmware_hash"], image.manifest["protocol_hash"]
        arguments = ", ".join(map(repr, (target, image.tree_hash, firmware, protocol, root_sent, trial)))
        verdict = json.loads(session.exec(f"_finish({arguments})"))
        if not verdict["ok"]:
            found = verdict["files"]
            bad = sorted(name for name in {*wanted, *found} if found.get(name) != wanted.get(name))
            raise SomaError(f"{session.port}: verification failed on the unit for {', '.join(bad)}")
        session.link.capture = bytearray()  # the new firmware's boot output: a rollback's reason
        session.soft_reset()
    status, info, boot_output = _await_confirmation(session, image, confirm_timeout)
    files_sent = sum(1 for path, _ in to_send if path.startswith(target))
    return FlashResult(
        session.port,
        info.serial,
        status,
        image.firmware_hash,
        new_slot,
        files_sent,
        bytes_sent,
        _since(started),
        boot_output if status == "rolled_back" else "",
    )


def _send(session: Unit, files: list[tuple[str, bytes]], window_bits: int, report: Progress) -> int:
    """Stream `files` [(path on the unit, bytes)] behind a header that lists them, as one
    compressed, escaped, acknowledged byte stream into the unit's _recv; return the bytes
    that crossed the line."""
    listing = json.dumps([[path, len(data)] for path, data in files]).encode()
    files = [("", len(listing).to_bytes(2, "little") + listing), *files]
    total = sum(len(data) for _, data in files)
    packer = zlib.compressobj(9, zlib.DEFLATED, window_bits)
    wire = _escape(packer.compress(b"".join(data for _, data in files)) + packer.flush())
    blocks = [wire[start : start + BLOCK] for start in range(0, len(wire), BLOCK)]

    def feed(serial: "serial.Serial") -> bytes:
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

    session.exec(f"_recv({len(wire)})", feed=feed)
    return len(wire)


def _unit_helpers() -> str:
    """The helpers as code that unpacks and runs them on the unit (a third of the bytes)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, MIN_WINDOW_BITS)
    packed = base64.b64encode(packer.compress(_UNIT_HELPERS.encode()) + packer.flush()).decode()
    return f"exec(deflate.DeflateIO(io.BytesIO(binascii.a2b_base64({packed!r})), deflate.ZLIB).read())"


def _escape(data: bytes) -> bytes:
    return _ESCAPED.sub(lambda match: bytes((ESCAPE, match[0][0] ^ 0x40)), data)


def _await_confirmation(unit: Unit, image: Image, timeout: float) -> tuple[str, UnitInfo, str]:
    """('installed', info, "") once the new firmware reports itself confirmed; ('rolled_back',
    info, why) if the unit came back on its previous slot instead: why is the failed boot's
    console output (captured on the line since the reset), or that it printed nothing."""
    link = unit.link
    failed_boot = b""
    try:
        for attempt in range(2):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                info = unit.wait_info(deadline - time.monotonic(), BOOT_POLL_S)
                if info is None:
                    break
                if info.boot_state == BootState.confirmed and info.firmware_hash == image.firmware_hash:
                    return "installed", info, ""
                if info.boot_state == BootState.rolled_back:
                    output = _boot_output(failed_boot or bytes(link.capture or b""))
                    silent = f"its console printed nothing; it did not confirm itself within {timeout:g} s"
                    return "rolled_back", info, output or silent
                time.sleep(BOOT_POLL_S)
            if attempt == 0:
                # Never confirmed: a reset makes the boot loader abandon the trial slot.
                failed_boot = bytes(link.capture or b"")
                with unit.raw_repl():
                    pass
                unit.soft_reset()
    finally:
        link.capture = None
    raise SomaError(f"{unit.port}: the unit did not come back after flashing (timeout)")


def _boot_output(data: bytes) -> str:
    """A boot's console output (a traceback, the firmware's own messages) from what the line
    carried since the reset: the REPL's prompt and banners, and what came before the
    reboot, left out; its last BOOT_OUTPUT_LINES lines."""
    lines = console_lines(data)
    reboots = [index for index, line in enumerate(lines) if SOFT_REBOOT in line]
    lines = lines[reboots[-1] + 1 :] if reboots else lines
    return "\n".join([line for line in lines if not REPL_NOISE.match(line)][-BOOT_OUTPUT_LINES:])


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
