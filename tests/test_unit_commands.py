"""`soma provision` and `soma monitor` against virtual beds."""

import time

import pytest

from soma.link.unit import UnitLink
from soma.sim.sanctuary import Sanctuary

pytestmark = pytest.mark.concurrent  # virtual beds in real time, no timing bar judged: two at a time


def test_provision_writes_the_key_without_printing_it(tmp_path):
    import hashlib
    import subprocess
    import sys
    from pathlib import Path

    soma = str(Path(sys.executable).with_name("soma"))
    key_file = tmp_path / "sanctuary.key"
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True) as sanctuary:
        port = sanctuary.beds[0].port
        result = subprocess.run(
            [soma, "provision", "--port", port, "--sanctuary", "7", "--bed", "3", "--new-key", str(key_file)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        key = bytes.fromhex(key_file.read_text().strip())
        assert key.hex() not in result.stdout + result.stderr
        assert hashlib.sha256(key).digest()[:4].hex() in result.stdout
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        with UnitLink(port) as link:
            info = link.management().request("info", timeout=5)
        assert (info[9], info[10]) == (7, 3)
        again = subprocess.run(
            [soma, "provision", "--port", port, "--sanctuary", "7", "--bed", "3", "--new-key", str(key_file)],
            capture_output=True,
            text=True,
        )
        assert again.returncode == 2 and "refusing to overwrite" in again.stderr


def test_monitor_prints_json_lines_of_telemetry(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    soma = str(Path(sys.executable).with_name("soma"))
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True) as sanctuary:
        time.sleep(1.0)
        result = subprocess.run(
            [soma, "monitor", "--port", sanctuary.beds[0].port, "--period-ms", "100", "--seconds", "2"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 0, result.stderr
    frames = [json.loads(line) for line in result.stdout.splitlines()]
    telemetry = [frame for frame in frames if "pad_left_mc" in frame]
    assert len(telemetry) >= 10
    assert 10_000 < telemetry[-1]["pad_left_mc"] < 40_000
