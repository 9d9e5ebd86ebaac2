"""`soma demo` shortened (2 beds, a night of a minute): it runs every stage on virtual beds,
prints the summary, writes the picture, the page, the bench reports and the traceability
records, and its figures are within their bars."""

import json
import subprocess
import sys
from pathlib import Path

from soma.station.traceability import Records

SOMA = str(Path(sys.executable).with_name("soma"))
SPEC_BARS = {  # SPEC §8, in the units the summary prints
    "sync error p50": 200,
    "sync error p99": 1000,
    "sync error max": 2000,
    "ushering onset spread": 5,
    "pad tracking error": 0.2,
    "power: most drawn / budget": 1,
}


def test_a_short_night_in_a_two_bed_sanctuary(tmp_path):
    out = tmp_path / "night"
    result = subprocess.run(
        [SOMA, "demo", "--beds", "2", "--night-minutes", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout
    for stage in ("flashing", "calibrating", "bench-testing", "provisioning", "uploading", "the night"):
        assert stage in text
    for figure, bar in SPEC_BARS.items():  # judged here against SPEC §8, not by the demo's own table
        (line,) = [line for line in text.splitlines() if line.startswith(figure + ":")]
        assert float(line[len(figure) + 1 :].split()[0]) <= bar, line
    assert "FAIL" not in text and "PASSED" in text
    assert (out / "night.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "night.html").read_text()
    assert "data:image/png;base64," in page and "PASSED" in page
    for bed in (1, 2):
        junit = (out / "bench" / f"bed{bed}.xml").read_text()
        assert "<testsuite" in junit and 'failures="0"' in junit
        assert json.loads((out / "bench" / f"bed{bed}.json").read_text())["passed"] is True
    records = Records(str(out / "traceability.sqlite"))
    units = records.units()
    assert len(units) == 2
    for unit in units:
        runs = {(run["kind"], run["outcome"]) for run in records.history(unit["serial"])}
        assert runs == {("flash", "installed"), ("calibrate", "pass"), ("bench", "pass")}
