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
- replay.*: what `soma replay` runs (read_recording, run_pipeline_file) over an 8-hour
  100 Hz recording as `soma sim record` writes it (its size in recording_mb): the peak
  resident memory of the host process (peak_rss_mb) and of the MicroPython child
  running the pipeline (pipeline_peak_rss_mb, its VmHWM), both bounded however long the
  night; samples_per_s over the whole run (reading, resampling, the pipeline)
"""

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from soma.sim.recorder import BcgRecorder
from soma.sim.sensing_night import Stretch, score, simulate
from soma.sim.sleeper import Sleeper

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


REPLAY_HOURS = 8
# What `soma replay FILE` runs, in a process of its own: its epochs and both peaks.
_REPLAY_PROBE = """
import json, resource, sys
from soma.sensing.replay import read_recording, run_pipeline_file
with read_recording(sys.argv[1]) as recording:
    epochs, cost = run_pipeline_file(recording.codes_path)
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps([len(epochs), peak_kib, cost["peak_rss_kib"]]))
"""


def _record_night(path: Path, hours: int) -> None:
    """A night as `soma sim record` writes it: the sleeper's BCG and truth at 100 Hz."""
    sleeper = Sleeper("bench/replay")
    recorder = BcgRecorder(path, hours * HOUR_S)
    n = 0
    while recorder.add(n / 100, sleeper.bcg_code(n / 100), sleeper.vitals(n / 100)):
        n += 1


def _replay_night() -> Iterator[Result]:
    with tempfile.TemporaryDirectory(prefix="soma-bench-replay-") as folder:
        night = Path(folder) / "night.csv"
        _record_night(night, REPLAY_HOURS)
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-c", _REPLAY_PROBE, str(night)], capture_output=True, text=True, check=True
        )
        seconds = time.monotonic() - started
        epochs, soma_kib, child_kib = json.loads(result.stdout)
        yield Result("replay.recording_mb", round(night.stat().st_size / 1e6, 1), "MB")
    yield Result("replay.epochs", epochs, "epochs")
    yield Result("replay.peak_rss_mb", round(soma_kib / 1024, 1), "MB")
    yield Result("replay.pipeline_peak_rss_mb", round(child_kib / 1024, 1), "MB")
    yield Result("replay.samples_per_s", round(REPLAY_HOURS * HOUR_S * 100 / seconds), "samples/s")


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
    yield from _replay_night()
