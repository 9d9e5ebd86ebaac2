"""The page of a `soma demo` night: one self-contained HTML file embedding the picture, with
the summary, the per-bed results (the safety oracle's verdict among them) and the events."""

import base64
import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soma.errors import SomaError
from soma.files import write_atomically

if TYPE_CHECKING:
    from soma.demo.night_report import BedRow, Event, NightReport, SummaryRow

# A table row ending in a verdict: (ok, escaped cell texts, cell classes).
VerdictRow = tuple[bool, list[str], list[str | None]]

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; background: #fafafa;
       margin: 0; padding: 24px 32px; line-height: 1.45; }
main { max-width: 1600px; margin: 0 auto; }
h1 { font-size: 1.6rem; margin: 0 0 12px; }
h2 { font-size: 1.15rem; margin: 28px 0 8px; }
.verdict { font-size: 1.4rem; font-weight: 700; letter-spacing: 0.06em; color: #fff; padding: 10px 18px;
           border-radius: 6px; display: inline-block; }
.verdict.pass { background: #1b7a3a; }
.verdict.fail { background: #b3261e; }
.injected { margin: 10px 0 0; padding: 8px 12px; border-left: 4px solid #b3261e; background: #fdecea; }
figure { margin: 20px 0 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; background: #fff; }
figcaption { font-size: 0.85rem; color: #57606a; }
table { border-collapse: collapse; background: #fff; font-size: 0.95rem; min-width: 480px; }
th, td { border: 1px solid #d0d7de; padding: 5px 12px; text-align: left; vertical-align: top; }
th { background: #f0f2f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.fail td { background: #fdecea; color: #8c1d18; font-weight: 600; }
span.ok { color: #1b7a3a; font-weight: 600; }
span.bad { color: #b3261e; font-weight: 700; }
.kind-ushering { color: #9a5b00; font-weight: 600; }
.kind-fault { color: #b3261e; font-weight: 600; }
.kind-phase { color: #57606a; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _clock(t_s: float) -> str:
    minutes, seconds = divmod(max(float(t_s), 0.0), 60)
    return f"{int(minutes)}:{seconds:04.1f}"


def _summary_table(rows: Sequence["SummaryRow"]) -> str:
    if not rows:
        return "<p>No summary.</p>"
    cells: list[VerdictRow] = [
        (row.ok, [_e(row.label), _e(row.value), _e(row.bar) if row.bar else "—"], [None, "num", None]) for row in rows
    ]
    return _verdict_table("summary", ("measure", "value", "bar"), cells)


def _bed_table(rows: Sequence["BedRow"]) -> str:
    if not rows:
        return "<p>No beds.</p>"
    cells: list[VerdictRow] = []
    for row in sorted(rows, key=lambda r: r.number):
        error = (
            (row.calibration_problem or "—") if row.calibration_error_c is None else f"{row.calibration_error_c:.3f}"
        )
        faults = ", ".join(_e(name) for name in row.faults) if row.faults else "none"
        hottest = "—" if row.max_true_pad_c is None else f"{row.max_true_pad_c:.1f}"
        breaches = ", ".join(f"{_e(rule)} {count}" for rule, count in row.breaches.items()) or "0 breaches"
        if row.breaches:
            breaches = f'<span class="bad">{breaches}</span>'
        values = [_e(row.number), _e(row.serial), _e(error), _e(row.bench_verdict), faults, _e(row.relay or "—")]
        values += [hottest, breaches]
        cells.append((row.ok, values, ["num", None, "num", None, None, None, "num", None]))
    headers = (
        "bed",
        "serial",
        "calibration error, °C",
        "bench",
        "faults",
        "relay",
        "true pad max, °C",
        "safety oracle",
    )
    return _verdict_table("beds", headers, cells)


def _verdict_table(css: str, headers: Sequence[str], rows: Sequence[VerdictRow]) -> str:
    """A table whose rows end in a verdict; failing rows get class "fail". `rows`: (ok,
    escaped cell texts, cell classes)."""
    lines = [f'<table class="{css}">', "<tr>" + "".join(f"<th>{h}</th>" for h in (*headers, "verdict")) + "</tr>"]
    for ok, values, classes in rows:
        verdict = '<span class="ok">ok</span>' if ok else '<span class="bad">FAIL</span>'
        tds = "".join(
            f'<td class="{c}">{v}</td>' if c else f"<td>{v}</td>" for v, c in zip(values, classes, strict=True)
        )
        lines.append(f'<tr class="{"ok" if ok else "fail"}">{tds}<td>{verdict}</td></tr>')
    lines.append("</table>")
    return "\n".join(lines)


def _event_table(events: Sequence["Event"]) -> str:
    if not events:
        return "<p>No events.</p>"
    lines = ['<table class="events">', "<tr><th>time (m:ss)</th><th>kind</th><th>event</th></tr>"]
    for event in sorted(events, key=lambda e: e.t_s):
        lines.append(
            f'<tr><td class="num">{_e(_clock(event.t_s))}</td><td class="kind-{_e(event.kind)}">{_e(event.kind)}</td>'
            f"<td>{_e(event.label)}</td></tr>"
        )
    lines.append("</table>")
    return "\n".join(lines)


def _page(report: "NightReport", png_bytes: bytes) -> str:
    """The page as a string, with the PNG embedded as a data URI."""
    verdict = report.verdict
    picture = base64.b64encode(png_bytes).decode("ascii")
    injected = ""
    if report.injected:
        injected = (
            f'<p class="injected">Fault injected on purpose: <strong>{_e(report.injected)}</strong>'
            + (f" ({_e(report.injected_note)})" if report.injected_note else "")
            + ". The report marks it: red dashed lines in the picture (the injection, and each bed's fault); "
            "the summary judges what had to happen, "
            "and the beds table shows the faults each bed reported.</p>"
        )
    alt = f"{report.title}: pad temperature, wake light, power and sleep state of every bed over the night"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(report.title)}: {verdict}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<h1>{_e(report.title)}</h1>
<div class="verdict {"pass" if report.verdict_ok else "fail"}">{verdict}</div>
{injected}
<figure>
<img src="data:image/png;base64,{picture}" alt="{_e(alt)}">
<figcaption>One time axis, minutes since the night started. Gold line: Wake-Dream Ushering (shaded after);
red dashed: a fault; grey dotted: a phase of the night.</figcaption>
</figure>
<h2>Summary</h2>
{_summary_table(report.summary)}
<h2>Beds</h2>
{_bed_table(report.bed_rows)}
<h2>Events</h2>
{_event_table(report.events)}
</main>
</body>
</html>
"""


def write_html(report: "NightReport", png_path: str | os.PathLike[str], html_path: str | os.PathLike[str]) -> Path:
    """Write the self-contained page to `html_path` (whole or not at all), embedding the PNG at `png_path`."""
    try:
        png_bytes = Path(png_path).read_bytes()
    except OSError as exc:
        raise SomaError(f"{png_path}: cannot read the picture for the report ({exc.strerror or exc})") from None
    page = _page(report, png_bytes).encode("utf-8")
    return write_atomically(html_path, lambda f: f.write(page), "report")
