"""The report of `soma demo`: a picture and a self-contained HTML page of one simulated night in a sanctuary.

The picture puts every bed on one time axis (minutes since the night started): pad temperature and set point,
wake light, power against the Equal Rest budget, and the firmware's sleep state over the sleeper's true stage.
The page embeds the picture and adds the summary, the per-bed results (the safety oracle's verdict among them) and the
events of the night.
"""

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SomaError
from .files import write_atomically


@dataclass
class BedTrace:
    """What one bed reported during the night, telemetry frame by frame (10 Hz), plus its power grants."""

    number: int  # bed 1..N
    serial: str
    times_s: list  # seconds since the night started, one per telemetry sample
    pad_c: list  # left pad temperature, degC
    setpoint_c: list  # left pad set point, degC; None where the zone is off
    light_permille: list  # wake light output 0..1000
    drawn_w: list  # electrical power the bed draws (both zones), W
    sleep_state: list  # the firmware's per-epoch estimate: "unknown" | "awake" | "light" | "deep"
    truth_stage: list  # the simulated sleeper's stage: "empty" | "awake" | "light" | "deep"
    grants: list = field(default_factory=list)  # (t_s, grant_w) samples, sparser (~every 2-3 s)


@dataclass
class SummaryRow:
    """One line of the summary: a measure, its value, the bar it must meet, and whether it does."""

    label: str  # e.g. "sync error p99"
    value: str  # already formatted, e.g. "612 us"
    bar: str  # e.g. "<= 1000 us", or "" when there is no bar
    ok: bool  # False: the line is highlighted as failing


@dataclass
class BedRow:
    """One bed's results: calibration, bench check, the faults it reported, and the safety oracle's verdict."""

    number: int
    serial: str
    calibration_error_c: float | None  # worst error after calibration
    bench_verdict: str  # "pass" | "fail" | "skipped"
    faults: list  # fault names latched/reported during the night, [] if none
    ok: bool
    calibration_problem: str = ""  # why there is no calibration error, if there is none
    relay: str = ""  # the heater enable relay in its last telemetry: "open" | "closed" | "" (unknown)
    max_true_pad_c: float | None = None  # the hottest true pad the safety oracle saw (the night's), None: not watched
    breaches: dict = field(default_factory=dict)  # safety oracle rule -> breaches, the rules breached only


@dataclass
class Event:
    """Something that happened at one moment of the night, marked on every row of the picture."""

    t_s: float
    label: str  # e.g. "Wake-Dream Ushering", "fault injected: heater-stuck on bed 3"
    kind: str  # "ushering" | "fault" | "phase"


@dataclass
class NightReport:
    """Everything the report shows about one simulated night."""

    title: str  # e.g. "Soma Sanctuary: 8 beds, a night in 3 minutes"
    budget_w: float  # the Equal Rest budget
    beds: list  # BedTrace per bed
    bed_rows: list  # BedRow per bed
    summary: list  # SummaryRow
    events: list  # Event
    injected: str | None  # the fault name injected, or None
    verdict_ok: bool  # overall
    injected_note: str = ""  # what the fault is and what must happen


PNG_NAME = "night.png"
HTML_NAME = "night.html"
DPI = 110
RIGHT_ALIGNED_AFTER = 0.8  # event labels past this fraction of the night end at their line, inside the figure
MAX_POINTS = 6000  # per line: more is invisible at this width and slows Agg down

PASS_COLOUR = "#1b7a3a"
FAIL_COLOUR = "#b3261e"
USHERING_COLOUR = "#e69f00"
PHASE_COLOUR = "#9a9a9a"
BUDGET_COLOUR = "#303030"
STATE_COLOURS = {
    "awake": "#f4a261",
    "light": "#8ecae6",
    "deep": "#1d3f72",
    "unknown": "#c4c4c4",
    "empty": "#ffffff",
}
STATE_ORDER = ("awake", "light", "deep", "unknown")


def _verdict(ok):
    return "PASSED" if ok else "FAILED"


# --- the picture ---------------------------------------------------------------------------------------------------


def _thin(n):
    return max(1, n // MAX_POINTS)


def _hold(times, values, at):
    """The last value at or before each of `at` (a zero-order hold, as power and grants behave); 0 before the first."""
    import numpy as np

    times = np.asarray(times, dtype=float)
    values = np.asarray(values, dtype=float)
    if times.size == 0:
        return np.zeros(len(at))
    index = np.searchsorted(times, at, side="right") - 1
    held = values[np.clip(index, 0, None)]
    held[index < 0] = 0.0
    held[np.asarray(at) > times[-1] + _sample_period(times) * 2] = 0.0  # a bed that went silent draws nothing known
    return held


def _sample_period(times):
    import numpy as np

    if len(times) < 2:
        return 1.0
    return float(np.median(np.diff(times)))


def _runs(times, labels, end):
    """Consecutive equal labels as (label, start, width), in the units of `times`; the last run lasts until `end`."""
    runs = []
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            stop = times[i] if i < len(labels) else end
            runs.append((labels[start], times[start], max(stop - times[start], 0.0)))
            start = i
    return runs


def _night_span_s(report):
    ends = [bed.times_s[-1] for bed in report.beds if bed.times_s]
    ends += [t for bed in report.beds for t, _ in bed.grants]
    ends += [event.t_s for event in report.events]
    return max(ends, default=0.0) or 60.0


def _bed_colours(count):
    from matplotlib import colormaps

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(max(count, 1))]


def _label_span(event, span_min, chars_per_axes=190):
    """Where an event's label sits above the top row, in axes fractions: right of its line, left of it near the end."""
    x = event.t_s / 60 / span_min
    width = (len(event.label) + 2) / chars_per_axes
    return (x - width, x) if x > RIGHT_ALIGNED_AFTER else (x, x + width)


def _place_labels(events, span_min):
    """A level for each event's label so that no two labels on one level overlap."""
    levels_taken = []
    levels = []
    for event in events:
        start, end = _label_span(event, span_min)
        free = (i for i, taken in enumerate(levels_taken) if all(end < s or start > e for s, e in taken))
        level = next(free, len(levels_taken))
        if level == len(levels_taken):
            levels_taken.append([])
        levels_taken[level].append((start, end))
        levels.append(level)
    return levels


def _mark_events(axes, events, span_min):
    """Lines at every event on every row, the time after an ushering lightly shaded, labels above the top row."""
    from matplotlib.transforms import blended_transform_factory

    events = sorted(events, key=lambda e: e.t_s)
    usherings = [e.t_s / 60 for e in events if e.kind == "ushering"]
    for axis in axes:
        for i, start in enumerate(usherings):
            stop = usherings[i + 1] if i + 1 < len(usherings) else span_min
            axis.axvspan(start, stop, color=USHERING_COLOUR, alpha=0.07, lw=0, zorder=0)
        for event in events:
            x = event.t_s / 60
            if event.kind == "ushering":
                axis.axvline(x, color=USHERING_COLOUR, lw=2, zorder=5)
            elif event.kind == "fault":
                axis.axvline(x, color=FAIL_COLOUR, lw=1.6, ls=(0, (5, 3)), zorder=5)
            else:
                axis.axvline(x, color=PHASE_COLOUR, lw=1, ls=":", zorder=1)
    top = axes[0]
    transform = blended_transform_factory(top.transData, top.transAxes)
    for event, level in zip(events, _place_labels(events, span_min), strict=True):
        x = event.t_s / 60
        style = {
            "ushering": {"color": "#9a5b00", "fontsize": 9, "fontweight": "bold"},
            "fault": {"color": FAIL_COLOUR, "fontsize": 9, "fontweight": "bold"},
        }.get(event.kind, {"color": "#606060", "fontsize": 7.5})
        top.text(
            x,
            1.1 + 0.09 * level,  # above the row's own title
            event.label,
            transform=transform,
            ha="right" if x / span_min > RIGHT_ALIGNED_AFTER else "left",
            va="bottom",
            clip_on=False,
            **style,
        )


def _plot_temperature(axis, beds, colours):
    import numpy as np
    from matplotlib.lines import Line2D

    handles = []
    for bed, colour in zip(beds, colours, strict=True):
        if not bed.times_s:
            handles.append(Line2D([], [], color=colour, lw=2, alpha=0.35, label=f"bed {bed.number} (no data)"))
            continue
        step = _thin(len(bed.times_s))
        minutes = np.asarray(bed.times_s[::step], dtype=float) / 60
        pad = np.asarray([np.nan if v is None else v for v in bed.pad_c[::step]], dtype=float)
        setpoint = np.asarray([np.nan if v is None else v for v in bed.setpoint_c[::step]], dtype=float)
        (line,) = axis.plot(minutes, pad, color=colour, lw=1.6, label=f"bed {bed.number}")
        axis.plot(minutes, setpoint, color=colour, lw=1.2, ls=(0, (4, 2)), alpha=0.9)
        handles.append(line)
    handles.append(Line2D([], [], color="0.3", lw=1.6, label="pad (solid)"))
    handles.append(Line2D([], [], color="0.3", lw=1.2, ls=(0, (4, 2)), label="set point (dashed)"))
    axis.set_ylabel("pad, °C")
    axis.set_title(
        "pad temperature (solid) and set point (dashed); no dash while a zone is off", loc="left", fontsize=9
    )
    axis.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        ncol=1 if len(beds) <= 10 else 2,
        frameon=False,
        borderaxespad=0,
    )


def _plot_light(axis, beds, colours):
    import numpy as np

    for bed, colour in zip(beds, colours, strict=True):
        if not bed.times_s:
            continue
        step = _thin(len(bed.times_s))
        minutes = np.asarray(bed.times_s[::step], dtype=float) / 60
        percent = np.asarray(bed.light_permille[::step], dtype=float) / 10
        axis.plot(minutes, percent, color=colour, lw=1.4)
    axis.set_ylim(-3, 105)
    axis.set_yticks([0, 50, 100])
    axis.set_ylabel("light, %")
    axis.set_title("wake light (bed colours as above)", loc="left", fontsize=9)


def _plot_power(axis, beds, budget_w, colours, span_s):
    import numpy as np
    from matplotlib.lines import Line2D

    # Every sample time, so the steps are the beds' own; a fixed grid on long nights keeps Agg quick.
    grid = np.unique(np.concatenate([np.asarray(bed.times_s, dtype=float) for bed in beds] + [np.array([0.0, span_s])]))
    if grid.size > MAX_POINTS:
        grid = np.linspace(0.0, span_s, MAX_POINTS)
    base = np.zeros_like(grid)
    for bed, colour in zip(beds, colours, strict=True):
        if not bed.times_s:
            continue
        drawn = _hold(bed.times_s, bed.drawn_w, grid)
        axis.fill_between(grid / 60, base, base + drawn, step="post", color=colour, alpha=0.85, lw=0)
        base = base + drawn
    peak = float(base.max(initial=0.0))
    handles = []
    axis.axhline(budget_w, color=BUDGET_COLOUR, lw=3, zorder=6)
    axis.text(
        0.995,
        budget_w,
        f"Equal Rest budget {budget_w:g} W",
        transform=axis.get_yaxis_transform(),
        ha="right",
        va="bottom",
        fontsize=8.5,
        fontweight="bold",
        color=BUDGET_COLOUR,
        zorder=8,
        bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1},
    )
    handles.append(Line2D([], [], color=BUDGET_COLOUR, lw=3, label=f"Equal Rest budget ({budget_w:g} W)"))
    granted = [bed for bed in beds if bed.grants]
    if granted:
        times = np.unique(np.asarray([t for bed in granted for t, _ in bed.grants], dtype=float))
        total = np.zeros_like(times)
        for bed in granted:
            samples = sorted(bed.grants)
            total += _hold([t for t, _ in samples], [w for _, w in samples], times)
        times = np.append(times, span_s)  # the last grant holds to the end of the night
        total = np.append(total, total[-1])
        axis.step(times / 60, total, where="post", color="black", lw=1.3, ls=(0, (3, 1.5)), zorder=7)
        handles.append(Line2D([], [], color="black", lw=1.3, ls=(0, (3, 1.5)), label="granted, sum"))
        peak = max(peak, float(total.max()))
    axis.set_ylim(0, max(peak, budget_w, 1.0) * 1.15)
    axis.set_ylabel("power, W")
    axis.set_title(
        "power: each bed's draw stacked (bed colours), the sum of grants and the Equal Rest budget",
        loc="left",
        fontsize=9,
    )
    axis.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _plot_sleep(axis, beds):
    from matplotlib.patches import Patch

    for bed in beds:
        y = bed.number
        if not bed.times_s:
            axis.text(
                0.005,
                y,
                "no telemetry",
                transform=axis.get_yaxis_transform(),
                va="center",
                fontsize=7.5,
                color="0.45",
                style="italic",
            )
            continue
        minutes = [t / 60 for t in bed.times_s]
        end = minutes[-1] + _sample_period(bed.times_s) / 60
        for labels, y0, height, edge in (
            (bed.sleep_state, y - 0.38, 0.5, None),
            (bed.truth_stage, y + 0.17, 0.18, "0.75"),
        ):
            spans = {}
            for label, start, width in _runs(minutes, labels, end):
                spans.setdefault(label, []).append((start, width))
            for label, ranges in spans.items():
                colour = STATE_COLOURS.get(label, STATE_COLOURS["unknown"])
                axis.broken_barh(ranges, (y0, height), facecolors=colour, edgecolor="none", lw=0)
            if edge:  # outline the truth strip so "empty" (white) reads as part of the strip
                axis.broken_barh(
                    [(minutes[0], end - minutes[0])], (y0, height), facecolors="none", edgecolor=edge, lw=0.5
                )
    numbers = [bed.number for bed in beds] or [1]
    axis.set_ylim(max(numbers) + 0.6, min(numbers) - 0.6)  # bed 1 on top
    axis.set_yticks(numbers, [f"bed {n}" for n in numbers], fontsize=8 if len(numbers) <= 10 else 7)
    axis.tick_params(axis="y", length=0)
    axis.set_title(
        "sleep state: firmware estimate (wide band; 30 s epochs in real time, so a compressed night has few) "
        "over the sleeper's true stage (thin strip)",
        loc="left",
        fontsize=9,
    )
    handles = [Patch(facecolor=STATE_COLOURS[state], label=state) for state in STATE_ORDER]
    handles.append(Patch(facecolor=STATE_COLOURS["empty"], edgecolor="0.6", label="empty bed (truth)"))
    axis.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        frameon=False,
        title="state",
        title_fontsize=8,
    )
    for side in ("top", "right", "left"):
        axis.spines[side].set_visible(False)


def draw_png(report, path):
    """Draw the night into a PNG at `path` (whole or not at all); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    beds = sorted(report.beds, key=lambda bed: bed.number)
    colours = _bed_colours(len(beds))[: len(beds)]
    span_s = _night_span_s(report)
    span_min = span_s / 60
    sleep_height = 0.34 * max(len(beds), 1) + 0.9
    heights = (3.0, 1.3, 2.2, sleep_height)
    figure, axes = plt.subplots(
        4, 1, sharex=True, figsize=(14, sum(heights) + 1.8), height_ratios=heights, layout="constrained"
    )
    try:
        temperature, light, power, sleep = axes
        _plot_temperature(temperature, beds, colours)
        _plot_light(light, beds, colours)
        _plot_power(power, beds, report.budget_w, colours, span_s)
        _plot_sleep(sleep, beds)
        _mark_events(axes, report.events, span_min)
        for axis in axes:
            axis.set_xlim(0, span_min)
            axis.grid(axis="x", color="0.9", lw=0.6)
            if axis is not sleep:
                axis.grid(axis="y", color="0.93", lw=0.6)
            axis.set_axisbelow(True)
            for side in ("top", "right"):
                axis.spines[side].set_visible(False)
        sleep.set_xlabel("minutes since the night started")
        title = f"{report.title}: {_verdict(report.verdict_ok)}"
        if report.injected:
            title += f"\nfault injected on purpose: {report.injected} (red dashed: the injection, each bed's fault)"
        figure.suptitle(title, fontsize=14, fontweight="bold", color=PASS_COLOUR if report.verdict_ok else FAIL_COLOUR)
        return write_atomically(path, lambda f: figure.savefig(f, format="png", dpi=DPI), "report")
    finally:
        plt.close(figure)


# --- the page ------------------------------------------------------------------------------------------------------

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


def _e(text):
    return html.escape(str(text), quote=True)


def _clock(t_s):
    minutes, seconds = divmod(max(float(t_s), 0.0), 60)
    return f"{int(minutes)}:{seconds:04.1f}"


def _summary_table(rows):
    if not rows:
        return "<p>No summary.</p>"
    cells = [
        (row.ok, [_e(row.label), _e(row.value), _e(row.bar) if row.bar else "—"], [None, "num", None]) for row in rows
    ]
    return _verdict_table("summary", ("measure", "value", "bar"), cells)


def _bed_table(rows):
    if not rows:
        return "<p>No beds.</p>"
    cells = []
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


def _verdict_table(css, headers, rows):
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


def _event_table(events):
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


def _page(report, png_bytes):
    """The page as a string, with the PNG embedded as a data URI."""
    verdict = _verdict(report.verdict_ok)
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


def write_html(report, png_path, html_path):
    """Write the self-contained page to `html_path` (whole or not at all), embedding the PNG at `png_path`."""
    try:
        png_bytes = Path(png_path).read_bytes()
    except OSError as exc:
        raise SomaError(f"{png_path}: cannot read the picture for the report ({exc.strerror or exc})") from None
    page = _page(report, png_bytes).encode("utf-8")
    return write_atomically(html_path, lambda f: f.write(page), "report")


def write_report(report, directory):
    """Write night.png and night.html into `directory` (created if missing); returns (png_path, html_path)."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SomaError(f"{directory}: cannot write the report ({exc.strerror or exc})") from None
    png_path = draw_png(report, directory / PNG_NAME)
    html_path = write_html(report, png_path, directory / HTML_NAME)
    return png_path, html_path
