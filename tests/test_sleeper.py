"""The simulated sleeper: a plausible night, and a BCG signal that carries the heart and
breathing rates the ground truth says (checked with a plain spectrum), moves, and an empty
bed that is quiet but not silent."""

import math

import pytest

from soma.sim.sleeper import AWAKE, DEEP, LIGHT, Sleeper

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core

RATE_HZ = 100


def samples(sleeper, start_s, seconds):
    return [sleeper.bcg_code(start_s + n / RATE_HZ) for n in range(int(seconds * RATE_HZ))]


def dominant_hz(signal, low_hz, high_hz):
    """Frequency of the largest DFT bin between low_hz and high_hz."""
    mean = sum(signal) / len(signal)
    centred = [value - mean for value in signal]
    n = len(centred)
    best, best_power = None, -1.0
    for k in range(int(low_hz * n / RATE_HZ), int(high_hz * n / RATE_HZ) + 1):
        re = sum(v * math.cos(2 * math.pi * k * i / n) for i, v in enumerate(centred))
        im = sum(v * math.sin(2 * math.pi * k * i / n) for i, v in enumerate(centred))
        if re * re + im * im > best_power:
            best, best_power = k * RATE_HZ / n, re * re + im * im
    return best


def test_the_night_has_a_plausible_shape():
    sleeper = Sleeper(seed=7)
    stages = [sleeper.stage_at(t) for t in range(0, 8 * 3600, 60)]
    assert stages[0] == AWAKE and stages[-1] == AWAKE  # not yet in bed, then up
    assert stages.count(DEEP) > 30 and stages.count(LIGHT) > stages.count(DEEP)
    first_deep = stages.index(DEEP)
    last_deep = len(stages) - 1 - stages[::-1].index(DEEP)
    assert first_deep < 120 and last_deep > first_deep  # deep sleep early in the night


def still_window(sleeper, start_s, seconds):
    """The first `seconds` of BCG from start_s on without a movement in them."""
    t = start_s
    while True:
        signal = samples(sleeper, t, seconds)
        if not any(sleeper.vitals(t + n).moving for n in range(int(seconds) + 1)):
            return t, signal
        t += seconds


def test_bcg_carries_breathing_and_heartbeat_at_the_true_rates():
    sleeper = Sleeper(seed=3)
    start, signal = still_window(sleeper, 3 * 3600.0, 30.0)
    truth = sleeper.vitals(start + 15)
    assert truth.present
    breathing_hz = dominant_hz(signal, 0.1, 0.5)
    assert abs(breathing_hz * 60 - truth.breaths_per_min) <= 2.5
    diffs = [b - a for a, b in zip(signal, signal[1:], strict=False)]  # emphasise the sharp J-waves
    heart_hz = dominant_hz(diffs, 0.7, 1.6)
    assert abs(heart_hz * 60 - truth.heart_bpm) <= 3


def test_empty_bed_is_quiet_but_not_silent_and_movement_is_loud():
    sleeper = Sleeper(seed=5)
    empty = samples(sleeper, 0.0, 5.0)
    spread = max(empty) - min(empty)
    assert 20 < spread < 1000
    moving = []
    t = 3600.0
    while not moving and t < 8 * 3600:
        sleeper.bcg_code(t)
        if sleeper.vitals(t).moving:
            moving = samples(sleeper, t, 2.0)
        t += 1.0
    assert moving and max(moving) - min(moving) > 5 * spread
