"""The Wake-Dream Ushering's smart window (firmware/ushering.py SmartWindow): from random
sleep-state histories, with beacons lost, late and out of order and each bed deciding on
its own ticks, every bed picks the same instant, and that instant is the reference
decision: the end of the first epoch in which a strict majority of the occupied beds were
ready (light sleep or moving), or the window's end. The wake light rises by perceived
brightness. Also under MicroPython."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ushering
from mpexec import run_micropython
from soma_protocol.enums import Occupancy, WakeReadiness

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core

START_US = 1_000_000_000
PERIOD_US = 1_000_000  # beacons about once a second
OCCUPIED, LIGHT, MOVING = int(Occupancy.occupied), int(WakeReadiness.light), int(WakeReadiness.moving)


def reference_onset(start_us, end_us, epoch_us, states):
    """states: {bed: [(occupancy, readiness) per epoch]}: the decision from what every bed
    advertised, heard perfectly."""
    for epoch in range((end_us - start_us) // epoch_us):
        occupied = [
            readiness in (LIGHT, MOVING) for (occupancy, readiness) in _at(states, epoch) if occupancy == OCCUPIED
        ]
        if occupied and 2 * sum(occupied) > len(occupied):
            return start_us + (epoch + 1) * epoch_us
    return end_us


def _at(states, epoch):
    return [history[epoch] for history in states.values()]


def night(states, window_us, loss, seed, sync_error_us=1_000):
    """Every bed's SmartWindow after the window, fed by lossy, jittered beacons carrying
    the sender's state of the epoch its (slightly wrong) global clock is in; each bed
    decides at 10 Hz on its own tick phase. Returns the onsets, one per bed."""
    rng = random.Random(seed)
    beds = sorted(states)
    end_us = START_US + window_us
    windows = {bed: ushering.SmartWindow(START_US, end_us) for bed in beds}
    epoch_us = windows[beds[0]].epoch_us
    clock_error = {bed: rng.randrange(-sync_error_us, sync_error_us + 1) for bed in beds}
    events = []  # (true time, kind, bed, payload)
    for bed in beds:
        t = START_US - 2 * PERIOD_US + rng.randrange(PERIOD_US)
        while t < end_us + PERIOD_US:
            events.append((t, 0, bed, None))
            t += PERIOD_US + rng.randrange(-100_000, 100_001)
        phase = rng.randrange(100_000)
        events += [(t, 1, bed, None) for t in range(START_US + phase, end_us + 200_000, 100_000)]
    events.sort()
    heard = []
    for t, kind, bed, _ in events:
        while heard and heard[0][0] <= t:
            _, receiver, sender, stamp, state = heard.pop(0)
            windows[receiver].heard(sender, stamp, *state)
        if kind == 1:
            windows[bed].decide(t + clock_error[bed])
            continue
        stamp = t + clock_error[bed]
        epoch = max(0, (stamp - START_US) // epoch_us)
        state = states[bed][min(epoch, len(states[bed]) - 1)]
        windows[bed].heard(bed, stamp, *state)  # a bed hears itself
        for receiver in beds:
            if receiver != bed and rng.random() >= loss:
                heard.append((t + rng.randrange(1_000, 3_001), receiver, bed, stamp, state))
        heard.sort()
    return {bed: window.decide(end_us + 1) for bed, window in windows.items()}, epoch_us


state = st.tuples(st.sampled_from([0, 1, 2]), st.integers(0, 4))  # occupancy, readiness
EPOCHS = 4
histories = st.dictionaries(
    st.integers(1, 12), st.lists(state, min_size=EPOCHS, max_size=EPOCHS), min_size=1, max_size=6
)


@settings(max_examples=60, deadline=None)  # each example simulates a whole window of beacons
@given(histories, st.floats(0.0, 0.3), st.integers(0, 2**32))
def test_every_bed_picks_the_same_instant_the_reference_one(states, loss, seed):
    window_us = EPOCHS * 30_000_000
    onsets, epoch_us = night(states, window_us, loss, seed)
    assert epoch_us == 30_000_000
    assert set(onsets.values()) == {reference_onset(START_US, START_US + window_us, epoch_us, states)}


def test_short_windows_use_shorter_epochs_and_the_deadline_bounds_the_onset():
    assert ushering.SmartWindow(0, 20_000_000).epoch_us == 5_000_000
    assert ushering.SmartWindow(0, 3_000_000).onset_us == 3_000_000  # no whole epoch: the deadline
    nobody_ready = {1: [(OCCUPIED, 3)] * 4, 2: [(OCCUPIED, 1)] * 4}
    onsets, _ = night(nobody_ready, 4 * 30_000_000, 0.2, 5)
    assert set(onsets.values()) == {START_US + 4 * 30_000_000}


def test_empty_and_unknown_beds_do_not_vote():
    states = {1: [(1, MOVING)] * 4, 2: [(0, MOVING)] * 4, 3: [(OCCUPIED, 3), (OCCUPIED, LIGHT), (OCCUPIED, 3), (2, 3)]}
    onsets, epoch_us = night(states, 4 * 30_000_000, 0.1, 9)
    assert set(onsets.values()) == {START_US + 2 * epoch_us}


def test_the_light_rises_by_perceived_brightness():
    duties = [ushering.duty(lightness) for lightness in range(0, 1001, 10)]
    assert duties[0] == 0 and duties[-1] == 1000
    assert all(a <= b for a, b in zip(duties, duties[1:], strict=False))
    assert ushering.duty(500) < 250  # half the perceived brightness: under a quarter of the power


def test_the_same_decision_and_duties_under_micropython():
    states = {1: [(2, 3), (2, 2), (2, 4), (2, 3)], 2: [(2, 3), (2, 3), (2, 2), (2, 3)], 3: [(1, 4)] * 4}
    epochs = [
        [(bed, START_US + epoch * 30_000_000 + 15_000_000, *history[epoch]) for bed, history in states.items()]
        for epoch in range(4)
    ]
    code = (
        "import json, ushering\n"
        f"w = ushering.SmartWindow({START_US}, {START_US + 120_000_000})\n"
        f"for epoch, reports in enumerate({epochs!r}):\n"
        "    for report in reports:\n"
        "        w.heard(*report)\n"
        f"    w.decide({START_US} + (epoch + 1) * 30_000_000)\n"
        "print(json.dumps([w.onset_us, [ushering.duty(x) for x in range(0, 1001, 125)]]))"
    )
    onset, duties = run_micropython(code)
    assert onset == reference_onset(START_US, START_US + 120_000_000, 30_000_000, states) == START_US + 90_000_000
    assert duties == [ushering.duty(x) for x in range(0, 1001, 125)]
