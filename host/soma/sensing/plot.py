"""The picture of a replayed recording: the raw signal, then what the pipeline made of it
(heart and breathing rate, movement, presence and sleep state), on one time axis. Where
the recording carries the sleeper's ground truth (`soma sim record` writes it), it is
drawn under the estimates."""

import os
from collections.abc import Sequence

from soma.files import write_atomically
from soma.sensing.replay import EPOCH_S, Epoch, Recording

STATE_LEVELS = {"unknown": 0, "awake": 3, "light": 2, "deep": 1}


def plot_replay(recording: Recording, epochs: Sequence[Epoch], path: str | os.PathLike[str]) -> None:
    """Write the PNG to `path` (whole or not at all)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = recording.times_s
    t0 = times[0]
    minutes = [(t - t0) / 60 for t in times]
    ends = [epoch["t_s"] / 60 for epoch in epochs]
    starts = [end - EPOCH_S / 60 for end in ends]
    truth = recording.columns
    figure, (signal, heart, breathing, state) = plt.subplots(
        4, 1, sharex=True, figsize=(12, 8), height_ratios=(2, 1.3, 1.3, 1)
    )
    step = max(1, len(times) // 20_000)
    signal.plot(minutes[::step], recording.columns.get("bcg", [])[::step] or [0] * len(minutes[::step]), lw=0.4)
    signal.set_ylabel("BCG, ADC codes")
    for start, end, epoch in zip(starts, ends, epochs, strict=True):
        if epoch["moving"]:
            signal.axvspan(start, end, color="tab:red", alpha=0.15, lw=0)
    signal.set_title("raw signal (red: epochs with movement)", loc="left", fontsize=9)
    for axis, key, column, label in (
        (heart, "heart_bpm", "heart_bpm", "heart, bpm"),
        (breathing, "breaths_per_min", "breaths_per_min", "breathing, /min"),
    ):
        if column in truth:
            axis.plot(minutes[::step], truth[column][::step], color="0.6", lw=1, label="truth")
        axis.plot(ends, [epoch[key] for epoch in epochs], "o", ms=3, color="tab:blue", label="firmware (valid)")
        axis.set_ylabel(label)
        axis.legend(loc="upper right", fontsize=8)
    state.step(ends, [STATE_LEVELS[epoch["sleep_state"]] for epoch in epochs], where="pre", color="tab:purple")
    state.fill_between(
        ends, 0, [0.4 if epoch["presence"] == "occupied" else 0 for epoch in epochs], step="pre", color="tab:green"
    )
    state.set_yticks([0, 1, 2, 3], ["empty", "deep", "light", "awake"])
    state.set_xlabel("minutes")
    state.set_title("sleep state (green: in bed)", loc="left", fontsize=9)
    figure.tight_layout()
    try:
        write_atomically(path, lambda f: figure.savefig(f, format="png", dpi=110), "plot")
    finally:
        plt.close(figure)
