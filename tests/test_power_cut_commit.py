"""A power cut in the middle of a commit (`soma sim power-cut`: the unit's next flash write
stops half-way and it restarts): `soma provision` and `soma calibrate` say in one line that
the unit lost power during the commit and to run it again, the run again succeeds, and the
calibration bath is back at its idle temperature with the shaker off whatever happened;
a failed calibration leaves the bath idle too."""

import subprocess
import sys
from pathlib import Path

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
        bed.world.cut_power_after(10)
        key = tmp_path / "k.key"
        args = ["provision", "--port", bed.port, "--sanctuary", "3", "--bed", "2", "--db", tmp_path / "t.db"]
        one_line_exit_2(
            soma(*args, "--new-key", key),
            "the unit lost power during the sanctuary key commit and restarted",
            f"--key {key}` again",
        )
        again = soma(*args, "--key", key)
        assert again.returncode == 0 and "sanctuary 3, bed 2" in again.stdout, again.stderr


def test_calibration_cut_mid_commit_says_so_and_leaves_the_bath_idle(tmp_path):
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True, time_scale=1000) as sanctuary:
        bed = sanctuary.beds[0]
        sanctuary.place_in_bath(1)
        _started(sanctuary)
        bed.world.cut_power_after(10)
        args = ["calibrate", "--port", bed.port, "--bath", sanctuary.bath.port, "--db", tmp_path / "t.db"]
        one_line_exit_2(
            soma(*args), "the unit lost power during the calibration commit and restarted", "run `soma calibrate` again"
        )
        assert (sanctuary.bath.target_c, sanctuary.bath.shaker_codes) == (BATH_IDLE_C, 0)
        # A calibration that fails otherwise (a bath that cannot settle in time) leaves it idle too.
        failed = soma(*args, "--settle-timeout", "0.5")
        assert failed.returncode != 0 and "Traceback" not in failed.stderr, failed.stderr
        assert (sanctuary.bath.target_c, sanctuary.bath.shaker_codes) == (BATH_IDLE_C, 0)
