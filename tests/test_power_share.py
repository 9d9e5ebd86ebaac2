"""Equal Rest water-filling (firmware/power_share.py), with hypothesis: the grants never
exceed the budget (stale peers counted at their worst case), are max-min fair, never
exceed a demand, do not depend on the order of the data; and the same under MicroPython."""

import power_share
from hypothesis import given, settings
from hypothesis import strategies as st

from soma.mpexec import run_micropython

WORST_W = 240  # two zones at 120 W

beds = st.lists(
    st.tuples(st.integers(0, 0xFFFF), st.integers(0, WORST_W), st.booleans()),
    max_size=24,
    unique_by=lambda bed: bed[0],
)


PROPERTY = settings(max_examples=1_000)  # a small pure function: the fuzz floor is for decoders


@PROPERTY
@given(st.integers(0, 4000), beds)
def test_grants_stay_within_the_budget_and_the_demands(budget, demands):
    grants = power_share.grants(budget, demands, WORST_W)
    fresh = [bed for bed in demands if bed[2]]
    assert sum(grants[bed_id] for bed_id, _, _ in fresh) <= max(0, budget - WORST_W * (len(demands) - len(fresh)))
    assert all(0 <= grants[bed_id] <= demand for bed_id, demand, _ in fresh)
    assert all(grants[bed_id] == WORST_W for bed_id, _, is_fresh in demands if not is_fresh)


@PROPERTY
@given(st.integers(0, 4000), beds)
def test_grants_are_max_min_fair(budget, demands):
    grants = power_share.grants(budget, demands, WORST_W)
    fresh = [(bed_id, demand) for bed_id, demand, is_fresh in demands if is_fresh]
    unmet = [grants[bed_id] for bed_id, demand in fresh if grants[bed_id] < demand]
    if unmet:
        # Whoever is short got the top level (give or take the rounding's spare watt), and
        # nobody got more than that level + 1: raising anyone would lower someone poorer.
        assert max(grants[bed_id] for bed_id, _ in fresh) <= min(unmet) + 1
        stale = len(demands) - len(fresh)
        assert sum(grants[bed_id] for bed_id, _ in fresh) == max(0, budget - WORST_W * stale)


@PROPERTY
@given(st.integers(0, 4000), beds, st.randoms(use_true_random=False))
def test_every_bed_computes_the_same_grants_whatever_the_order(budget, demands, rng):
    shuffled = list(demands)
    rng.shuffle(shuffled)
    assert power_share.grants(budget, shuffled, WORST_W) == power_share.grants(budget, demands, WORST_W)


def test_a_tight_budget_is_shared_evenly_and_a_stale_peer_counts_at_its_worst():
    demands = [(1, 200, True), (2, 50, True), (3, 200, True), (4, 10, False)]
    assert power_share.grants(500, demands, WORST_W) == {1: 105, 2: 50, 3: 105, 4: 240}
    assert power_share.grants(601, demands[:3], WORST_W) == {1: 200, 2: 50, 3: 200}
    assert power_share.grants(100, demands[:3], WORST_W) == {1: 34, 2: 33, 3: 33}


def test_the_same_grants_under_micropython():
    demands = [(9, 200, True), (2, 50, True), (5, 200, True), (4, 10, False), (7, 120, True)]
    code = f"import json, power_share\nprint(json.dumps(power_share.grants(700, {demands!r}, {WORST_W})))"
    result = run_micropython(code)
    expected = power_share.grants(700, demands, WORST_W)
    assert {int(bed): grant for bed, grant in result.items()} == expected
