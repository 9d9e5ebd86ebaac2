"""Units that a REPL visit, a stray byte or a dead host does not stop for the night: a stray
Ctrl-C restarts the application while a tool keeps the REPL; `mpremote reset` and
machine.soft_reset() bring the application back; a REPL left by `mpremote soft-reset` or by
a flasher killed mid-transfer resets into the application after board.REPL_IDLE_MS."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from soma import paths
from soma.link.management import ManagementTimeout
from soma.link.serial_link import SerialLink
from soma.sim.sanctuary import Sanctuary, wait_for
from soma.sim.virtual_bed import HARD, SOFT

pytestmark = pytest.mark.concurrent  # virtual beds in real time, no timing bar judged: two at a time

BIN = Path(sys.executable).parent
REPL_IDLE_S = paths.import_firmware_module("board").REPL_IDLE_MS / 1000


def mpremote(port, *args):
    result = subprocess.run([str(BIN / "mpremote"), "connect", port, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def answers(bed, timeout):
    """The unit's firmware answers info within `timeout` seconds (asked every 0.5 s)."""
    with SerialLink(bed.port) as link:
        client = link.management()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return client.request("info", timeout=0.5)
            except ManagementTimeout:
                continue
    return None


@pytest.fixture
def flashed(tmp_path):
    with Sanctuary(beds=1, root=tmp_path, flashed=True) as sanctuary:
        bed = sanctuary.beds[0]
        assert answers(bed, 5)
        yield bed


def test_a_stray_ctrl_c_restarts_the_application_and_a_tool_keeps_the_repl(flashed):
    with SerialLink(flashed.port) as link:
        link.write(b"\x03")
    time.sleep(1.5)  # quiet: any byte in the second after a Ctrl-C (a request too) keeps the REPL
    assert answers(flashed, 5)  # outputs off, 1 s for a following byte, then a hard reset
    assert flashed.line.resets[HARD] == 1
    assert "42" in mpremote(flashed.port, "resume", "exec", "print(6 * 7)")  # Ctrl-C then Ctrl-A: stays
    time.sleep(2)
    assert flashed.line.resets[HARD] == 1 and flashed.world.watchdog_held == 1  # still at the REPL


def test_mpremote_reset_and_soft_reset_at_the_repl_bring_the_application_back(flashed):
    mpremote(flashed.port, "reset")  # soft reset into the raw REPL, then machine.reset()
    assert answers(flashed, 10) and flashed.line.resets[HARD] == 1
    soft_resets = flashed.line.resets[SOFT]  # mpremote's own, before its exec
    with SerialLink(flashed.port) as link:
        link.write(b"\x03\r")
        data = b""
        deadline = time.monotonic() + 5
        while b">>> " not in data and time.monotonic() < deadline:
            data += link.read(0.05)
        assert b">>> " in data
        link.write(b"import machine; machine.soft_reset()\r")
    assert answers(flashed, 5) and flashed.line.resets[SOFT] == soft_resets + 1


def test_a_repl_left_by_mpremote_or_by_a_killed_flasher_resumes_the_application(tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(paths.firmware_dir(), tree)
    # A module of incompressible bytes: ~6 s on the paced line, time to kill the flasher in it.
    (tree / "padding.py").write_text(f"DATA = {os.urandom(64 * 1024)!r}\n")
    with Sanctuary(beds=2, root=tmp_path / "beds", flashed=True, baud=115200) as sanctuary:
        left, flashing = sanctuary.beds
        assert answers(left, 5) and answers(flashing, 5)
        before = answers(flashing, 5)[1]
        boot_json = (Path(flashing.line.flash_dir) / "boot.json").read_text()
        flasher = subprocess.Popen(
            [
                str(BIN / "soma"),
                "flash",
                "--port",
                flashing.port,
                "--firmware",
                str(tree),
                "--db",
                str(tmp_path / "r.db"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        padding = Path(flashing.line.flash_dir) / "slot_b" / "padding.mpy"
        try:
            assert wait_for(padding.exists, 60), "the flasher never started sending"
        finally:
            flasher.send_signal(signal.SIGKILL)
            flasher.wait()
        killed_at = time.monotonic()
        mpremote(left.port, "resume", "exec", "print(1)")
        mpremote(left.port, "soft-reset")  # back in the raw REPL, main.py skipped (boot.py ran)
        left_at = time.monotonic()
        # Quiet: bytes at the REPL would count as use. The keepers reset both units.
        assert wait_for(lambda: left.line.resets[HARD] == 1, REPL_IDLE_S + 8)
        assert time.monotonic() - left_at >= REPL_IDLE_S - 1  # not before it fell idle
        assert wait_for(lambda: flashing.line.resets[HARD] == 1, REPL_IDLE_S + 8 - (time.monotonic() - killed_at))
        assert answers(left, 5)
        info = answers(flashing, 5)
        assert info and info[1] == before  # the confirmed firmware runs again
        assert json.loads((Path(flashing.line.flash_dir) / "boot.json").read_text()) == json.loads(boot_json)
