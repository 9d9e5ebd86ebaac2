"""`soma faults` on a virtual bed: it lists the latched faults, clears those whose cause has
gone, keeps (and says, exit 1) those whose cause is still there, and refuses a fault name
it does not know."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from soma.sim.sanctuary import Sanctuary

pytestmark = pytest.mark.concurrent  # virtual beds in real time, no timing bar judged: two at a time

SOMA = str(Path(sys.executable).with_name("soma"))


def faults(port, *args):
    return subprocess.run([SOMA, "faults", "--port", port, *args], capture_output=True, text=True, timeout=60)


def wait_for_latched(port, fault, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        view = json.loads(faults(port, "--json").stdout)
        if fault in view["latched"]:
            return view
        time.sleep(0.2)
    raise AssertionError(f"{fault} never latched")


def test_faults_lists_and_clears_only_what_has_no_cause_left(tmp_path):
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True, sleepers=False) as sanctuary:
        bed = sanctuary.beds[0]
        listed = faults(bed.port)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.strip() == f"{bed.port}: latched nothing"

        time.sleep(1.0)  # past the boot self-checks: an open sensor then is a fault of its own
        bed.world.model.inject("open", 0)
        assert wait_for_latched(bed.port, "sensor_left") == {
            "port": bed.port,
            "latched": ["sensor_left"],
            "cleared": [],
        }
        refused = faults(bed.port, "--clear")
        assert refused.returncode == 1
        assert "latched sensor_left" in refused.stdout
        assert "still latched: sensor_left (its cause has not gone)" in refused.stderr

        bed.world.model.heal("open", 0)
        time.sleep(0.5)  # a few 10 Hz readings of a whole thermistor
        cleared = faults(bed.port, "--clear", "sensor_left", "--json")
        assert cleared.returncode == 0, cleared.stderr
        assert json.loads(cleared.stdout) == {"port": bed.port, "latched": [], "cleared": ["sensor_left"]}

        unknown = faults(bed.port, "--clear", "overheat")
        assert unknown.returncode != 0
        assert "--clear: no fault 'overheat'" in unknown.stderr
        assert "Traceback" not in unknown.stderr
        empty = faults(bed.port, "--clear", ",")
        assert empty.returncode != 0 and "--clear: no fault named" in empty.stderr
