"""The picture of a `soma demo` night (matplotlib, drawn into a PNG): every bed on one time axis
(minutes since the night started): pad temperature and set point, wake light, power against the
Equal Rest budget, and the firmware's sleep state over the sleeper's true stage; the night's
events marked on every row."""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from soma.files import write_atomically

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from matplotlib.axes import Axes

    from soma.demo.night_report import BedTrace, Event, NightReport

Colour = tuple[float, float, float, float]  # RGBA

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


def _thin(n: int) -> int:
    return max(1, n // MAX_POINTS)


def _hold(times: "npt.ArrayLike", values: "npt.ArrayLike", at: "npt.NDArray[np.float64]") -> "npt.NDArray[np.float64]":
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


def _sample_period(times: "Sequence[float] | npt.NDArray[np.float64]") -> float:
    import numpy as np

    if len(times) < 2:
        return 1.0
    return float(np.median(np.diff(times)))


def _runs(times: Sequence[float], labels: Sequence[str], end: float) -> list[tuple[str, float, float]]:
    """Consecutive equal labels as (label, start, width), in the units of `times`; the last run lasts until `end`."""
    runs: list[tuple[str, float, float]] = []
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            stop = times[i] if i < len(labels) else end
            runs.append((labels[start], times[start], max(stop - times[start], 0.0)))
            start = i
    return runs


def _night_span_s(report: "NightReport") -> float:
    ends = [bed.times_s[-1] for bed in report.beds if bed.times_s]
    ends += [t for bed in report.beds for t, _ in bed.grants]
    ends += [event.t_s for event in report.events]
    return max(ends, default=0.0) or 60.0


def _bed_colours(count: int) -> list[Colour]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(max(count, 1))]


def _label_span(event: "Event", span_min: float, chars_per_axes: int = 190) -> tuple[float, float]:
    """Where an event's label sits above the top row, in axes fractions: right of its line, left of it near the end."""
    x = event.t_s / 60 / span_min
    width = (len(event.label) + 2) / chars_per_axes
    return (x - width, x) if x > RIGHT_ALIGNED_AFTER else (x, x + width)


def _place_labels(events: Sequence["Event"], span_min: float) -> list[int]:
    """A level for each event's label so that no two labels on one level overlap."""
    levels_taken: list[list[tuple[float, float]]] = []
    levels: list[int] = []
    for event in events:
        start, end = _label_span(event, span_min)
        free = (i for i, taken in enumerate(levels_taken) if all(end < s or start > e for s, e in taken))
        level = next(free, len(levels_taken))
        if level == len(levels_taken):
            levels_taken.append([])
        levels_taken[level].append((start, end))
        levels.append(level)
    return levels


def _mark_events(axes: Sequence["Axes"], events: Sequence["Event"], span_min: float) -> None:
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


def _plot_temperature(axis: "Axes", beds: Sequence["BedTrace"], colours: Sequence[Colour]) -> None:
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


def _plot_light(axis: "Axes", beds: Sequence["BedTrace"], colours: Sequence[Colour]) -> None:
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


def _plot_power(
    axis: "Axes", beds: Sequence["BedTrace"], budget_w: float, colours: Sequence[Colour], span_s: float
) -> None:
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


def _plot_sleep(axis: "Axes", beds: Sequence["BedTrace"]) -> None:
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


def draw_png(report: "NightReport", path: str | os.PathLike[str]) -> Path:
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
        title = f"{report.title}: {report.verdict}"
        if report.injected:
            title += f"\nfault injected on purpose: {report.injected} (red dashed: the injection, each bed's fault)"
        figure.suptitle(title, fontsize=14, fontweight="bold", color=PASS_COLOUR if report.verdict_ok else FAIL_COLOUR)
        return write_atomically(path, lambda f: figure.savefig(f, format="png", dpi=DPI), "report")
    finally:
        plt.close(figure)
