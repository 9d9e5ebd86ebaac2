"""Sensing benchmarks: the firmware's pipeline (firmware/sensing.py) under MicroPython with
a 96 KiB heap, over STRETCHES simulated hours of eight different sleepers. Sleeper k is
followed through hour k of their night, so the hours together hold getting into bed,
falling asleep, every stage, movement and getting up; each through a unit's BCG channel
with its own zero and gain errors, replayed with that unit's calibration.

- vitals.presence_accuracy: epochs whose occupancy matches the truth (most of the epoch)
- vitals.hr_mae_bpm, vitals.rr_mae_per_min: on still epochs with a valid estimate
- vitals.hr_valid_ratio, vitals.rr_valid_ratio: still epochs that got a valid estimate
- vitals.movement_recall: epochs with movement that were flagged; .movement_false_ratio
- vitals.valid_during_movement: epochs with movement that still reported a valid rate (0)
- vitals.sleep_state_agreement: still epochs whose state is the sleeper's stage;
  vitals.deep_precision: epochs said deep that were
- sensing.us_per_sample: sample and per-tick step, mean; sensing.tick_max_us the most
  any tick spent in it; sensing.sample_alloc_bytes and sensing.step_alloc_bytes over all
  samples (gc disabled around each)
"""

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

from soma.sim.sensing_night import Stretch, score, simulate

from . import Result

STRETCHES = 8
HOUR_S = 3600
VITALS = (  # soma.sim.sensing_night.score's figures, in the order printed
    ("epochs", "epochs"),
    ("presence_accuracy", "ratio"),
    ("hr_mae_bpm", "bpm"),
    ("hr_max_error_bpm", "bpm"),
    ("rr_mae_per_min", "/min"),
    ("hr_valid_ratio", "ratio"),
    ("rr_valid_ratio", "ratio"),
    ("movement_recall", "ratio"),
    ("movement_false_ratio", "ratio"),
    ("valid_during_movement", "epochs"),
    ("sleep_state_agreement", "ratio"),
    ("deep_precision", "ratio"),
)


def _stretch(k: int) -> Stretch:
    return simulate(f"bench/{k}", k * HOUR_S, HOUR_S)


def run() -> Iterator[Result]:
    with ProcessPoolExecutor(max_workers=2) as pool:
        stretches = list(pool.map(_stretch, range(STRETCHES)))
    figures = score(stretches)
    yield Result("vitals.simulated_hours", STRETCHES * HOUR_S / 3600, "h")
    for name, unit in VITALS:
        yield Result(f"vitals.{name}", figures[name], unit)
    samples = sum(s.cost["samples"] for s in stretches)
    yield Result(
        "sensing.us_per_sample", sum(s.cost["us_per_sample"] * s.cost["samples"] for s in stretches) / samples, "us"
    )
    yield Result("sensing.tick_max_us", max(s.cost["tick_max_us"] for s in stretches), "us")
    yield Result("sensing.sample_alloc_bytes", sum(s.cost["sample_alloc_bytes"] for s in stretches), "bytes")
    yield Result("sensing.step_alloc_bytes", sum(s.cost["step_alloc_bytes"] for s in stretches), "bytes")
