"""`soma flash` against virtual beds: first install on a blank unit, an unchanged re-flash,
one changed file, a firmware that never confirms itself or crashes rolled back by the unit
(with the failed boot's console output as the reason), a stopped firmware restarted."""

import shutil
import time

import pytest

from soma.link.unit import UnitLink
from soma.sim.sanctuary import Sanctuary
from soma.station.flashing import Image, flash
from soma_protocol.enums import BootState

CONFIRMED = int(BootState.confirmed)


@pytest.fixture(scope="module")
def image():
    return Image.build()


def variant(tmp_path, image_dir_name, edit):
    """A copy of the firmware tree with one module edited."""
    from soma import paths

    tree = tmp_path / image_dir_name
    shutil.copytree(paths.firmware_dir(), tree)
    edit(tree)
    return Image.build(tree)


def test_first_install_unchanged_reflash_and_one_changed_file(tmp_path, image):
    with Sanctuary(beds=1, root=tmp_path / "beds") as sanctuary, UnitLink(sanctuary.beds[0].port) as link:
        first = flash(link, image)
        assert first.status == "installed" and first.files_sent == len(image.files)
        info = link.management().request("info", timeout=5)
        assert info[1].hex() == image.firmware_hash and info[12] == CONFIRMED

        started = time.monotonic()
        again = flash(link, image)
        assert again.status == "unchanged" and again.files_sent == 0
        assert time.monotonic() - started <= 1.5

        changed = variant(
            tmp_path,
            "tree",
            lambda tree: (tree / "timebase.py").write_text((tree / "timebase.py").read_text() + "\n_BUILD = 2\n"),
        )
        third = flash(link, changed)
        assert third.status == "installed" and third.files_sent == 1 and third.slot != first.slot
        assert link.management().request("info", timeout=5)[1].hex() == changed.firmware_hash


def test_firmware_that_never_confirms_is_rolled_back(tmp_path, image):
    def never_confirm(tree):
        source = (tree / "service.py").read_text()
        assert "bed.boot.confirm()" in source
        (tree / "service.py").write_text(source.replace("bed.boot.confirm()", "pass  # broken build: never confirms"))

    broken = variant(tmp_path, "broken", never_confirm)
    with Sanctuary(beds=1, root=tmp_path / "beds") as sanctuary, UnitLink(sanctuary.beds[0].port) as link:
        assert flash(link, image).status == "installed"
        result = flash(link, broken, confirm_timeout=6)
        assert result.status == "rolled_back"
        assert result.boot_output == "its console printed nothing; it did not confirm itself within 6 s"
        info = link.management().request("info", timeout=5)
        assert info[1].hex() == image.firmware_hash  # the previous firmware runs again


def test_a_rollback_says_why_with_the_failed_boots_console_output(tmp_path, image):
    def crash_at_start(tree):
        source = (tree / "bed.py").read_text()
        (tree / "bed.py").write_text(source + "\nraise RuntimeError('the heater map is missing')\n")

    broken = variant(tmp_path, "crashing", crash_at_start)
    with Sanctuary(beds=1, root=tmp_path / "beds") as sanctuary, UnitLink(sanctuary.beds[0].port) as link:
        assert flash(link, image).status == "installed"
        result = flash(link, broken, confirm_timeout=4)
        assert result.status == "rolled_back"
        assert "RuntimeError: the heater map is missing" in result.boot_output.splitlines()
        assert "Traceback (most recent call last):" in result.boot_output


def test_flash_restarts_a_firmware_stopped_at_the_repl(tmp_path, image):
    with Sanctuary(beds=1, root=tmp_path / "beds") as sanctuary, UnitLink(sanctuary.beds[0].port) as link:
        assert flash(link, image).status == "installed"
        link.write(b"\r\x03")  # Ctrl-C: the application stops, the REPL waits
        time.sleep(0.3)
        link.write(b"\r")  # a byte after it: stopped for good, not a stray Ctrl-C
        result = flash(link, image)
        assert result.status == "restarted" and result.files_sent == 0
        info = link.management().request("info", timeout=5)
        assert info[1].hex() == image.firmware_hash and info[12] == CONFIRMED


def test_soma_flash_and_info_on_two_blank_units_in_parallel(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    soma = str(Path(sys.executable).with_name("soma"))
    with Sanctuary(beds=2, root=tmp_path / "beds") as sanctuary:
        ports = [bed.port for bed in sanctuary.beds]
        result = subprocess.run(
            [soma, "flash", "--json", *[arg for port in ports for arg in ("--port", port)]],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert [line["status"] for line in lines] == ["installed", "installed"], (result.stdout, result.stderr)
        info = subprocess.run([soma, "info", "--json", "--port", ports[1]], capture_output=True, text=True, timeout=30)
        assert info.returncode == 0, info.stderr
        document = json.loads(info.stdout)
        assert document["unit_serial"] == sanctuary.beds[1].unit.serial
        assert document["boot_state"] == "confirmed" and document["firmware_hash"] == lines[1]["firmware_hash"]


def test_connection_errors_are_one_line_exit_2(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    soma = str(Path(sys.executable).with_name("soma"))
    missing = subprocess.run([soma, "info", "--port", str(tmp_path / "ttyNONE")], capture_output=True, text=True)
    assert missing.returncode == 2 and "no such port" in missing.stderr and "Traceback" not in missing.stderr
    with Sanctuary(beds=1, root=tmp_path / "beds") as sanctuary:  # blank: a REPL, no Soma firmware
        blank = subprocess.run(
            [soma, "info", "--port", sanctuary.beds[0].port], capture_output=True, text=True, timeout=30
        )
    assert blank.returncode == 2 and "a blank MicroPython unit, no Soma firmware" in blank.stderr
    assert len(blank.stderr.strip().splitlines()) == 1


def test_power_cut_at_random_moments_of_a_flash_always_leaves_a_whole_version(tmp_path, image):
    import random
    import threading

    from soma.sim.virtual_bed import POWER_ON

    other = variant(
        tmp_path,
        "other",
        lambda tree: (tree / "timebase.py").write_text((tree / "timebase.py").read_text() + "\n_BUILD = 3\n"),
    )
    versions = {image.firmware_hash, other.firmware_hash}
    rng = random.Random(20)
    with Sanctuary(beds=1, root=tmp_path / "beds") as sanctuary:
        bed = sanctuary.beds[0]
        with UnitLink(bed.port) as link:
            assert flash(link, image).status == "installed"
        target = other
        for cut in range(20):
            link = UnitLink(bed.port)
            worker = threading.Thread(target=_attempt, args=(link, target))
            worker.start()
            time.sleep(rng.uniform(0.05, 2.5))
            bed.line.reset(POWER_ON)  # the power goes, wherever the flash was
            link.close()  # and the cable with it: the flasher's pending read ends
            worker.join(timeout=30)
            assert not worker.is_alive()
            with UnitLink(bed.port) as link:
                running = _running_version(link)
                assert running in versions, f"cut {cut}: the unit runs {running!r}"
                result = flash(link, target)  # the next flash completes
                assert result.status in ("installed", "unchanged"), f"cut {cut}: {result}"
                assert _running_version(link) == target.firmware_hash
            target = image if target is other else other


def _attempt(link, image):
    try:
        flash(link, image)
    except Exception:  # the cut ends it any way it can: serial, transport or unit errors
        pass


def _running_version(link, timeout=20):
    deadline = time.monotonic() + timeout
    client = link.management()
    while time.monotonic() < deadline:
        try:
            info = client.request("info", timeout=2)
        except Exception:  # still booting
            continue
        if info[12] in (CONFIRMED, int(BootState.rolled_back)):
            return info[1].hex()
        time.sleep(0.2)
    return None


def test_eight_units_flashed_in_parallel(tmp_path, image):
    from concurrent.futures import ThreadPoolExecutor

    def one(port):
        with UnitLink(port) as link:
            return flash(link, image)

    with Sanctuary(beds=8, root=tmp_path / "beds") as sanctuary:
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(one, [bed.port for bed in sanctuary.beds]))
    assert [result.status for result in results] == ["installed"] * 8
    assert {result.firmware_hash for result in results} == {image.firmware_hash}


def test_wrong_mpy_abi_and_protocol_mismatch_are_refused(tmp_path, image, monkeypatch):
    import re
    import subprocess
    import sys
    from pathlib import Path

    from soma.errors import SomaError
    from soma.station import flashing

    other_protocol = variant(
        tmp_path,
        "other-protocol",
        lambda tree: (tree / "wire_codec.py").write_text(
            re.sub(r"PROTOCOL_HASH = 0x[0-9A-F]+", "PROTOCOL_HASH = 0x12345678", (tree / "wire_codec.py").read_text())
        ),
    )
    soma = str(Path(sys.executable).with_name("soma"))
    with Sanctuary(beds=1, root=tmp_path / "beds") as sanctuary:
        port = sanctuary.beds[0].port
        with UnitLink(port) as link:
            monkeypatch.setattr(flashing, "MPY_MAJOR", 5)  # as if this host built for another .mpy ABI
            with pytest.raises(SomaError, match="loads .mpy v6, this build makes v5"):
                flash(link, image)
            monkeypatch.undo()
            assert flash(link, other_protocol).status == "installed"
        info = subprocess.run([soma, "info", "--port", port], capture_output=True, text=True, timeout=30)
    assert info.returncode == 2
    assert "protocol hash mismatch: the unit speaks 12345678" in info.stderr
    assert len(info.stderr.strip().splitlines()) == 1
