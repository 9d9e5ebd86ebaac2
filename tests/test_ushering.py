"""The Wake-Dream Ushering's smart window (firmware/ushering.py): from any sleep-state
history, every bed holding the same reports (in any order, repeated) picks the same
instant, the first epoch end with a majority of occupied beds ready, or the window's end;
and the wake light rises by perceived brightness. Also under MicroPython."""

import ushering
from hypothesis import given, settings
from hypothesis import strategies as st

from soma.mpexec import run_micropython

EPOCH_US = 30_000_000
WINDOW = (1_000_000_000, 1_000_000_000 + 20 * EPOCH_US)
PROPERTY = settings(max_examples=1_000)  # a small pure function: the fuzz floor is for decoders

report = st.tuples(st.integers(1, 12), st.integers(0, 2), st.integers(0, 4))  # bed, occupancy, readiness
histories = st.dictionaries(st.integers(0, 19), st.lists(report, max_size=16), max_size=20)


def majority_ready(reports):
    beds = {}
    for bed_id, occupancy, readiness in reports:
        occupied, ready = beds.get(bed_id, (False, False))
        beds[bed_id] = (occupied or occupancy == 2, ready or readiness in (2, 4))
    occupied = [ready for is_occupied, ready in beds.values() if is_occupied]
    return bool(occupied) and 2 * sum(occupied) > len(occupied)


@PROPERTY
@given(histories, st.randoms(use_true_random=False))
def test_every_bed_picks_the_same_instant_whatever_the_order_of_its_reports(history, rng):
    onset = ushering.onset_us(*WINDOW, EPOCH_US, history)
    shuffled = {}
    for epoch, reports in history.items():
        copy = reports + reports[: rng.randrange(len(reports) + 1)]  # some heard twice
        rng.shuffle(copy)
        shuffled[epoch] = copy
    assert ushering.onset_us(*WINDOW, EPOCH_US, shuffled) == onset


@PROPERTY
@given(histories)
def test_the_onset_is_the_end_of_the_first_majority_epoch_or_the_deadline(history):
    onset = ushering.onset_us(*WINDOW, EPOCH_US, history)
    assert WINDOW[0] + EPOCH_US <= onset <= WINDOW[1]
    ready_epochs = [epoch for epoch in range(20) if majority_ready(history.get(epoch, []))]
    if ready_epochs:
        assert onset == WINDOW[0] + (ready_epochs[0] + 1) * EPOCH_US
    else:
        assert onset == WINDOW[1]


def test_empty_beds_do_not_vote():
    history = {3: [(1, 1, 4), (2, 1, 4), (3, 2, 3)], 5: [(3, 2, 2), (1, 1, 3)]}
    assert ushering.onset_us(*WINDOW, EPOCH_US, history) == WINDOW[0] + 6 * EPOCH_US


def test_the_light_rises_by_perceived_brightness():
    ramp = [ushering.light_permille(t, 600, 1000) for t in range(-10, 700, 10)]
    assert ramp[0] == 0 and ramp[-1] == 1000
    assert all(a <= b for a, b in zip(ramp, ramp[1:], strict=False))
    assert ushering.light_permille(300, 600, 1000) < 250  # half the perceived ramp: under a quarter of the power
    assert ushering.light_permille(10_000, 600, 400) == ushering.light_permille(600, 600, 400) < 1000


def test_the_same_decision_and_ramp_under_micropython():
    history = {2: [(1, 2, 3), (2, 2, 2)], 4: [(1, 2, 2), (2, 2, 4), (3, 1, 0)]}
    code = (
        "import json, ushering\n"
        f"print(json.dumps([ushering.onset_us({WINDOW[0]}, {WINDOW[1]}, {EPOCH_US}, {history!r}),"
        " [ushering.light_permille(t, 600, 800) for t in range(0, 700, 50)]]))"
    )
    onset, ramp = run_micropython(code)
    assert onset == ushering.onset_us(*WINDOW, EPOCH_US, history)
    assert ramp == [ushering.light_permille(t, 600, 800) for t in range(0, 700, 50)]
