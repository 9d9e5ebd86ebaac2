"""A power cut in the middle of a flash write (`soma sim power-cut`: the unit's next flash
write stops half-way and it restarts): `soma provision` and `soma calibrate` say in one line
that the unit lost power during the commit and to run it again, the run again succeeds, and
the calibration bath is back at its idle temperature with the shaker off whatever happened
(a failed calibration leaves it idle too); `soma flash`'s own writes are cut too, and the
unit comes back on its old firmware, whole."""

import shutil
import subprocess
import sys
from pathlib import Path

from soma import paths
from soma.link.serial_link import SerialLink
from soma.sim.sanctuary import Sanctuary
from soma.station.calibration import BATH_IDLE_C

SOMA = str(Path(sys.executable).with_name("soma"))


def soma(*args):
    return subprocess.run([SOMA, *map(str, args)], capture_output=True, text=True, timeout=300)


def one_line_exit_2(result, *wanted):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    for text in wanted:
        assert text in result.stderr, result.stderr


def _started(sanctuary):
    """Once the bed's firmware answers (it talks to the world: a power cut reaches it)."""
    with SerialLink(sanctuary.beds[0].port) as link:
        link.management().request("info", timeout=10)


def test_provision_cut_mid_commit_says_so_and_runs_again(tmp_path):
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True) as sanctuary:
        bed = sanctuary.beds[0]
        _started(sanctuary)
        bed.cut_power_after(10)  # as `soma sim power-cut` arms it
        key = tmp_path / "k.key"
        args = ["provision", "--port", bed.port, "--sanctuary", "3", "--bed", "2", "--db", tmp_path / "t.db"]
        one_line_exit_2(
            soma(*args, "--new-key", key),
            "the unit lost power during the sanctuary key commit and restarted",
            f"--key {key}` again",
        )
        assert bed.power_cut is not None and not bed.power_cut.cut  # the firmware cut its own write: once
        again = soma(*args, "--key", key)
        assert again.returncode == 0 and "sanctuary 3, bed 2" in again.stdout, again.stderr


def test_calibration_cut_mid_commit_says_so_and_leaves_the_bath_idle(tmp_path):
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True, time_scale=1000) as sanctuary:
        bed = sanctuary.beds[0]
        sanctuary.place_in_bath(1)
        _started(sanctuary)
        bed.cut_power_after(10)  # as `soma sim power-cut` arms it
        args = ["calibrate", "--port", bed.port, "--bath", sanctuary.bath.port, "--db", tmp_path / "t.db"]
        one_line_exit_2(
            soma(*args), "the unit lost power during the calibration commit and restarted", "run `soma calibrate` again"
        )
        assert (sanctuary.bath.target_c, sanctuary.bath.shaker_codes) == (BATH_IDLE_C, 0)
        # A calibration that fails otherwise (a bath that cannot settle in time) leaves it idle too.
        failed = soma(*args, "--settle-timeout", "0.5")
        assert failed.returncode != 0 and "Traceback" not in failed.stderr, failed.stderr
        assert (sanctuary.bath.target_c, sanctuary.bath.shaker_codes) == (BATH_IDLE_C, 0)


def test_a_power_cut_reaches_soma_flash_writes_and_the_old_firmware_runs_on(tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(paths.firmware_dir(), tree)
    changed = (tree / "timebase.py").read_text() + "\n_BUILD = 2\n" + "#" * 20_000 + "\n"  # a file of some size
    (tree / "timebase.py").write_text(changed)
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True) as sanctuary:
        bed = sanctuary.beds[0]
        with SerialLink(bed.port) as link:
            running = link.management().request("info", timeout=10)[1]
        bed.cut_power_after(2000)
        args = ["flash", "--port", bed.port, "--firmware", tree, "--db", tmp_path / "t.db"]
        cut = soma(*args)
        assert cut.returncode == 2 and len(cut.stderr.strip().splitlines()) == 1, cut.stderr
        assert bed.power_cut is not None and bed.power_cut.cut  # the flash's writes were cut, not the firmware's
        with SerialLink(bed.port) as link:
            assert link.management().request("info", timeout=20)[1] == running  # the old slot, whole
        again = soma(*args)
        assert again.returncode == 0 and "installed" in again.stdout, again.stderr
