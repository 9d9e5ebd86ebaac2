"""Simulated stretches of nights with known ground truth, scored against what the firmware's
sensing pipeline (run under MicroPython by soma.sensing.replay) reports. The benchmark and the
tests use it.

A stretch is `seconds` of one sleeper's night from `start_s` on, sampled at 100 Hz through
a unit's BCG channel (offset and gain within tolerance) and replayed with that unit's
exact calibration. Truth is read once per second.
"""

import statistics
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

from soma.sensing.replay import EPOCH_S, RATE_HZ, Epoch, PipelineCost, run_pipeline
from soma.sim.sleeper import Sleeper, Vitals
from soma.sim.world import Unit

BREATHING_WINDOW_S = 51.2  # the firmware's breathing window before an epoch's end


@dataclass
class Stretch:
    seed: str
    start_s: float
    seconds: int
    truth: list[Vitals] = field(default_factory=list)  # per second
    epochs: list[Epoch] = field(default_factory=list)  # soma.sensing.replay.epoch_dict per epoch
    cost: PipelineCost = field(default_factory=dict)  # the replay driver's cost line


def simulate(seed: int | str, start_s: float, seconds: int, heap: str = "96K") -> Stretch:
    """Run the pipeline over the stretch; the Stretch with truth, epochs and cost."""
    sleeper = Sleeper(seed)
    unit = Unit.from_seed("sensing", seed)
    codes = array("H", bytes(2 * seconds * RATE_HZ))
    stretch = Stretch(str(seed), start_s, seconds)
    for n in range(seconds * RATE_HZ):
        t = start_s + n / RATE_HZ
        codes[n] = unit.bcg_code(sleeper.bcg_code(t))
        if n % RATE_HZ == 0:
            stretch.truth.append(sleeper.vitals(t))
    calibration_zero = round(unit.bcg_offset)
    stretch.epochs, stretch.cost = run_pipeline(codes, zero=calibration_zero, gain=1 / unit.bcg_gain, heap=heap)
    return stretch


@dataclass
class EpochTruth:
    present: bool  # most of the epoch
    still: bool  # present all through, no movement
    moving: bool  # any movement
    heart_bpm: float
    breaths_per_min: float  # over the breathing window
    stage: str  # the epoch's most common stage


def epoch_truth(stretch: Stretch, epoch: Epoch) -> EpochTruth:
    end = int(epoch["t_s"])
    seconds = stretch.truth[end - EPOCH_S : end]
    window = stretch.truth[max(0, end - int(BREATHING_WINDOW_S)) : end]
    present = sum(v.present for v in seconds) * 2 > len(seconds)
    return EpochTruth(
        present=present,
        still=all(v.present and not v.moving for v in seconds),
        moving=any(v.present and v.moving for v in seconds),
        heart_bpm=statistics.fmean(v.heart_bpm for v in seconds),
        breaths_per_min=statistics.fmean(v.breaths_per_min for v in window),
        stage=statistics.mode(v.stage for v in seconds),
    )


def score(stretches: Iterable[Stretch]) -> dict[str, float]:
    """The figures over all stretches' epochs (vitals.* as the quality bars name them)."""
    pairs = [(epoch, epoch_truth(s, epoch)) for s in stretches for epoch in s.epochs]
    still = [(e, t) for e, t in pairs if t.still]
    # A rate is set exactly when its valid flag is (epoch_dict): the None test only narrows.
    heart = [abs(e["heart_bpm"] - t.heart_bpm) for e, t in still if e["valid"]["heart"] and e["heart_bpm"] is not None]
    breathing = [
        abs(e["breaths_per_min"] - t.breaths_per_min)
        for e, t in still
        if e["valid"]["breathing"] and e["breaths_per_min"] is not None
    ]
    moving = [(e, t) for e, t in pairs if t.moving]
    occupied_still = [(e, t) for e, t in still if e["presence"] == "occupied"]
    return {
        "epochs": len(pairs),
        "presence_accuracy": sum((e["presence"] == "occupied") == t.present for e, t in pairs) / len(pairs),
        "hr_mae_bpm": statistics.fmean(heart) if heart else float("nan"),
        "hr_max_error_bpm": max(heart, default=float("nan")),
        "rr_mae_per_min": statistics.fmean(breathing) if breathing else float("nan"),
        "hr_valid_ratio": len(heart) / len(still) if still else 0.0,
        "rr_valid_ratio": len(breathing) / len(still) if still else 0.0,
        "movement_recall": sum(e["moving"] for e, _ in moving) / len(moving) if moving else 1.0,
        "movement_false_ratio": sum(e["moving"] for e, t in pairs if not t.moving) / len(pairs),
        "valid_during_movement": sum(e["valid"]["heart"] or e["valid"]["breathing"] for e, _ in moving),
        "sleep_state_agreement": (
            sum(e["sleep_state"] == t.stage for e, t in occupied_still) / len(occupied_still) if occupied_still else 0.0
        ),
        "deep_precision": _precision(occupied_still, "deep"),
    }


def _precision(pairs: list[tuple[Epoch, EpochTruth]], stage: str) -> float:
    said = [t.stage for e, t in pairs if e["sleep_state"] == stage]
    return said.count(stage) / len(said) if said else float("nan")
