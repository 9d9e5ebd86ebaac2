"""The report of `soma demo`: both files written whole, the page self-contained and escaped, failures as SomaError."""

import base64
import math
import re

import pytest
from PIL import Image

from soma.demo.night_report import BedRow, BedTrace, Event, NightReport, SummaryRow
from soma.demo.report import write_report
from soma.errors import SomaError

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SAMPLES = 200


def bed_trace(number, samples=SAMPLES):
    """~2 Hz telemetry: the set point cools then warms, the zone off for a while, a sleeper going deep then waking."""
    times = [i * 0.5 for i in range(samples)]
    setpoint = []
    for i in range(samples):
        if samples // 4 <= i < samples // 4 + 10:
            setpoint.append(None)  # zone off
        elif i < samples // 2:
            setpoint.append(30.0 - 8.0 * i / samples)
        else:
            setpoint.append(26.0 + 8.0 * (i - samples // 2) / samples)
    pad = [(sp if sp is not None else 27.0) + 0.4 * math.sin(i / 7 + number) for i, sp in enumerate(setpoint)]
    light = [0 if i < samples * 3 // 4 else min(1000, (i - samples * 3 // 4) * 25) for i in range(samples)]
    drawn = [40.0 + 20.0 * number + 15.0 * math.sin(i / 11) for i in range(samples)]
    stages = ["empty"] * 10 + ["awake"] * 30 + ["light"] * 50 + ["deep"] * 70 + ["light"] * 20 + ["awake"] * 20
    truth = (stages + ["awake"] * samples)[:samples]
    state = ["unknown"] * 60 + truth[60:]
    state = [s if s != "empty" else "unknown" for s in state]
    grants = [(t, 90.0 + 10 * number) for t in times[::5]]
    return BedTrace(number, f"SOMA-{number:04d}", times, pad, setpoint, light, drawn, state, truth, grants)


def empty_bed(number):
    return BedTrace(number, f"SOMA-{number:04d}", [], [], [], [], [], [], [], [])


def night(verdict_ok=False, beds=None, events=None, summary=None):
    beds = [bed_trace(1), bed_trace(2), empty_bed(3)] if beds is None else beds
    if events is None:
        events = [
            Event(10.0, "phase: falling asleep", "phase"),
            Event(40.0, "fault injected: heater-stuck on bed 2", "fault"),
            Event(75.0, "Wake-Dream Ushering", "ushering"),
        ]
    if summary is None:
        summary = [
            SummaryRow("sync error p99", "612 us", "<= 1000 us", True),
            SummaryRow("power over budget", "3.5 s", "0 s", False),
            SummaryRow("beds <script>alert(1)</script>", "3", "", True),
        ]
    rows = [
        BedRow(bed.number, bed.serial, None if not bed.times_s else 0.012 * bed.number, "pass", [], True)
        for bed in beds
    ]
    if len(rows) > 1:
        rows[1] = BedRow(
            2, "SOMA-0002", 0.031, "fail", ["heater-stuck"], False, "", "closed", 43.2, {"overtemp_heat": 1}
        )
    return NightReport(
        title=f"Soma Sanctuary: {len(beds)} bed{'s' if len(beds) != 1 else ''}, a night in 3 minutes",
        budget_w=250.0,
        beds=beds,
        bed_rows=rows,
        summary=summary,
        events=events,
        injected="heater-stuck" if events else None,
        verdict_ok=verdict_ok,
    )


def test_write_report_writes_a_large_png_and_a_page_that_embeds_it(tmp_path):
    out = tmp_path / "new" / "report"  # created when missing
    png, html_path = write_report(night(), out)
    assert png == out / "night.png" and html_path == out / "night.html"
    data = png.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 20_000
    with Image.open(png) as image:
        assert image.width >= 1000
    page = html_path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    embedded = re.search(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert embedded and base64.b64decode(embedded.group(1)) == data
    assert not re.search(r"<script|<link|src=\"http|href=\"http", page)
    assert sorted(p.name for p in out.iterdir()) == ["night.html", "night.png"]


def test_the_page_lists_every_summary_row_marks_failures_and_escapes_text(tmp_path):
    report = night(verdict_ok=False)
    _, html_path = write_report(report, tmp_path)
    page = html_path.read_text(encoding="utf-8")
    for row in report.summary:
        assert row.label.replace("<", "&lt;").replace(">", "&gt;") in page
    assert "FAILED" in page and "PASSED" not in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    failing = re.findall(r'<tr class="fail">(.*?)</tr>', page, flags=re.S)
    assert any("power over budget" in row for row in failing)
    assert not any("sync error p99" in row for row in failing)
    assert any("SOMA-0002" in row and "heater-stuck" in row for row in failing)
    # The safety oracle's verdict: the breached rules in red, the relay, the hottest true pad.
    (breached,) = [row for row in failing if "SOMA-0002" in row]
    assert '<span class="bad">overtemp_heat 1</span>' in breached and "closed" in breached and "43.2" in breached
    assert "0 breaches" in page
    assert "heater-stuck" in page and "Wake-Dream Ushering" in page


def test_a_passing_night_says_passed(tmp_path):
    _, html_path = write_report(night(verdict_ok=True), tmp_path)
    page = html_path.read_text(encoding="utf-8")
    assert "PASSED" in page and "FAILED" not in page


def test_a_directory_under_a_file_is_a_soma_error_and_leaves_nothing(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    with pytest.raises(SomaError, match="cannot write the report"):
        write_report(night(), blocker / "report")
    assert [p.name for p in tmp_path.iterdir()] == ["not-a-directory"]


def test_a_failed_page_write_leaves_no_temporary_file(tmp_path):
    (tmp_path / "night.html").mkdir()  # os.replace onto a directory fails after the page is written
    with pytest.raises(SomaError, match=r"night\.html: cannot write the report"):
        write_report(night(), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["night.html", "night.png"]
    assert (tmp_path / "night.html").is_dir() and not list((tmp_path / "night.html").iterdir())


def test_one_bed_without_events_or_grants_draws(tmp_path):
    bed = bed_trace(1)
    bed.grants = []
    report = night(verdict_ok=True, beds=[bed], events=[])
    png, html_path = write_report(report, tmp_path)
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    assert "No events." in html_path.read_text(encoding="utf-8")


def test_sixteen_beds_and_a_night_without_telemetry_draw(tmp_path):
    png, _ = write_report(night(beds=[bed_trace(n, samples=40) for n in range(1, 17)]), tmp_path / "many")
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    png, _ = write_report(night(beds=[empty_bed(1), empty_bed(2)], events=[]), tmp_path / "silent")
    assert png.read_bytes().startswith(PNG_SIGNATURE)
