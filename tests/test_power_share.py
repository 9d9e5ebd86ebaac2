"""Equal Rest water-filling (firmware/power_share.py), with hypothesis: the grants never
exceed the budget (stale peers counted at their worst case), are max-min fair, never
exceed a demand, do not depend on the order of the data, and are monotone (what makes
differing views safe); the own demand's hold-down against a reference; a simulated
sanctuary with jittered, lost and late beacons, reboots and drifting clocks, where the sum
of the beds' own grants stays within the budget at every instant and settles on the
common max-min fair allocation; and the same under MicroPython."""

import heapq
import itertools
from bisect import bisect_right
from types import SimpleNamespace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import power_share
from mpexec import run_micropython

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core

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


@PROPERTY
@given(st.integers(0, 4000), beds.filter(bool), st.data())
def test_a_peer_raising_its_demand_or_going_stale_never_raises_another_grant(budget, demands, data):
    # The safety of differing views rests on this, the rounding's spare watt included.
    k = data.draw(st.integers(0, len(demands) - 1))
    bed_id, demand, fresh = demands[k]
    raised = data.draw(st.one_of(st.integers(demand, WORST_W + 10).map(lambda d: (d, fresh)), st.just((demand, False))))
    changed = demands[:k] + [(bed_id, *raised)] + demands[k + 1 :]
    before = power_share.grants(budget, demands, WORST_W)
    after = power_share.grants(budget, changed, WORST_W)
    assert all(after[other] <= before[other] for other, _, is_fresh in demands if other != bed_id and is_fresh)


@PROPERTY
@given(st.integers(0, 4000), beds.filter(bool), st.data())
def test_a_bed_raising_its_own_demand_never_lowers_its_grant(budget, demands, data):
    k = data.draw(st.integers(0, len(demands) - 1))
    bed_id, demand, _ = demands[k]
    peers = demands[:k] + demands[k + 1 :]
    unknown = data.draw(st.integers(0, 3))
    higher = data.draw(st.integers(demand, WORST_W + 10))
    before = power_share.own_grant(bed_id, budget, demand, peers, unknown, WORST_W)
    assert power_share.own_grant(bed_id, budget, higher, peers, unknown, WORST_W) >= before
    # own_grant is this bed's entry of the common computation, unknown beds as stale ones
    stale = [(0x10000 + i, 0, False) for i in range(unknown)]
    assert before == power_share.grants(budget, [*peers, (bed_id, demand, True), *stale], WORST_W)[bed_id]


def test_a_tight_budget_is_shared_evenly_and_a_stale_peer_counts_at_its_worst():
    demands = [(1, 200, True), (2, 50, True), (3, 200, True), (4, 10, False)]
    assert power_share.grants(500, demands, WORST_W) == {1: 105, 2: 50, 3: 105, 4: 240}
    assert power_share.grants(601, demands[:3], WORST_W) == {1: 200, 2: 50, 3: 200}
    assert power_share.grants(100, demands[:3], WORST_W) == {1: 34, 2: 33, 3: 33}
    assert power_share.own_grant(2, 500, 200, [(1, 200, True), (3, 10, False)], 1, WORST_W) == 10


# --- the own demand's hold-down ---------------------------------------------------------

HOLD_US = 5_000


def _in_force(advertised, local_us):
    """The demand last advertised at or before local_us (0 before the first)."""
    return ([0] + [max(d, 0) for t, d in advertised if t <= local_us])[-1]


def reference_effective(advertised, local_us):
    """The least demand in force at any time in [local_us - HOLD_US, local_us]; 0 before
    the first advertisement."""
    start = local_us - HOLD_US
    in_force = [0] + [max(d, 0) for t, d in advertised if t <= start]
    return min([in_force[-1]] + [max(d, 0) for t, d in advertised if start < t <= local_us])


@PROPERTY
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2 * HOLD_US),  # gap before the advertisement
            st.integers(-10, WORST_W),
            st.lists(st.integers(0, 2 * HOLD_US), max_size=3),  # queries after it
        ),
        max_size=30,
    )
)
@example([(0, 1, []), (0, 2, []), (0, 3, []), (1, 4, []), (4999, 3, [])])  # more raises than slots: lower, safe
def test_the_own_demand_holds_raises_down_and_lets_drops_through(steps):
    own = power_share.OwnDemand(HOLD_US)
    advertised = []
    now = 10**9  # a bed up for a while: local time is not 0
    for gap, demand, queries in steps:
        now += gap
        own.advertise(demand, now)
        advertised.append((now, demand))
        queries = [now, *sorted(now + q for q in queries)]
        for query in queries:
            expected = reference_effective(advertised, query)
            effective = own.effective(query)
            assert effective <= expected  # never more than any peer may still count
            latest = max(demand, 0)
            held = [latest] + [max(d, 0) for t, d in advertised if query - HOLD_US < t]
            if _in_force(advertised, query - HOLD_US) == latest and set(held) == {latest}:
                assert effective == expected  # the latest demand has held all the hold: it counts
            if sum(1 for t, _ in advertised if query - 2 * HOLD_US < t) < power_share._SLOTS:
                assert effective == expected  # the ring had room for every raise: exact
        now = queries[-1]


def test_a_raise_counts_after_the_hold_and_a_drop_at_once():
    own = power_share.OwnDemand(HOLD_US)
    assert own.effective(0) == 0
    for t in range(0, 3 * HOLD_US, 1000):
        own.advertise(100, t)  # a steady demand, re-advertised: its hold is not restarted
        # just booted: 0 for a hold, as peers may still count a former demand
        assert own.effective(t) == (100 if t >= HOLD_US else 0)
    own.advertise(200, 3 * HOLD_US)
    assert own.effective(4 * HOLD_US - 1) == 100
    assert own.effective(4 * HOLD_US) == 200
    own.advertise(30, 4 * HOLD_US + 1)
    assert own.effective(4 * HOLD_US + 1) == 30


# --- a simulated sanctuary ----------------------------------------------------------------

PERIOD_US = 1_000_000
STALE_US = power_share.STALE_PERIODS * PERIOD_US
SANCTUARY_HOLD_US = power_share.HOLD_PERIODS * PERIOD_US
LATENCY_US = 5_000  # a beacon's advertisement to its reception timestamp: air, stack, queue
SIMULATION = settings(max_examples=300)  # each example runs a whole sanctuary for tens of seconds

demand_values = st.one_of(st.sampled_from([0, 0, WORST_W]), st.integers(-10, WORST_W + 50))


@st.composite
def sanctuaries(draw, lossless=False):
    """Beds with drifting clocks, each demand a step function, beacons every period with
    jitter, each delivery lost at random and in bursts (per sender, receiver or all), beds
    that reboot; quiet beds also record each demand change at once, between beacons."""
    n = draw(st.integers(2, 12))
    horizon = draw(st.integers(5, 25)) * PERIOD_US
    times = st.integers(0, horizon)

    def schedule():
        return sorted(draw(st.lists(st.tuples(times, demand_values), max_size=6)) + [(0, draw(demand_values))])

    return SimpleNamespace(
        n=n,
        budget=draw(st.integers(0, n * WORST_W)),
        horizon=horizon,
        jitter=draw(st.integers(0, 200_000)),
        clocks=[(draw(st.integers(0, 10**10)), draw(st.integers(-50, 50))) for _ in range(n)],
        schedules=[schedule() for _ in range(n)],
        quiet=draw(st.booleans()),
        loss=0.0 if lossless else draw(st.floats(0, 0.5)),
        bursts=[]
        if lossless
        else draw(
            st.lists(
                st.tuples(times, st.integers(0, 8 * PERIOD_US), st.none() | st.integers(0, n - 1), st.booleans()),
                max_size=4,
            )
        ),
        reboots=[]
        if lossless
        else draw(st.lists(st.tuples(st.integers(0, n - 1), times, st.integers(0, 3 * PERIOD_US)), max_size=3)),
        rng=draw(st.randoms(use_true_random=False)),
    )


class SimBed:
    def __init__(self, offset, ppm):
        self.offset = offset
        self.ppm = ppm
        self.up = True
        self.boot()

    def boot(self):
        self.own = power_share.OwnDemand(SANCTUARY_HOLD_US)
        self.heard = {}  # peer -> (latest demand heard, local time heard)

    def local(self, t):
        return self.offset + t + t * self.ppm // 1_000_000

    def when(self, local_us):
        """The first true time at which this bed's clock reads local_us."""
        t = (local_us - self.offset) * 1_000_000 // (1_000_000 + self.ppm)
        while self.local(t) < local_us:
            t += 1
        while self.local(t - 1) >= local_us:
            t -= 1
        return t

    def view(self, bed_id, t, n, budget):
        """(own grant, effective own demand, reserved watts, fresh beds) at true time t."""
        if not self.up:
            return 0, 0, 0, 0
        now = self.local(t)
        effective = self.own.effective(now)
        peers = [(peer, demand, now - heard < STALE_US) for peer, (demand, heard) in self.heard.items()]
        unknown = n - 1 - len(peers)
        grant = power_share.own_grant(bed_id, budget, effective, peers, unknown, WORST_W)
        fresh = 1 + sum(1 for peer in peers if peer[2])
        return grant, effective, WORST_W * (n - fresh), fresh


def demand_at(schedule, t):
    return schedule[bisect_right(schedule, (t, float("inf"))) - 1][1]


def simulate(sanctuary, until):
    """Run the sanctuary to `until` (true us); check the budget and that no occupied bed is
    starved at every instant where any bed's view changes; return the final grants."""
    s, rng = sanctuary, sanctuary.rng
    sim = [SimBed(offset, ppm) for offset, ppm in s.clocks]
    events = []  # (true time, order, kind, bed, payload)
    order = itertools.count()

    def at(t, kind, bed, payload=None):
        heapq.heappush(events, (t, next(order), kind, bed, payload))

    for bed in range(s.n):
        at(rng.randrange(PERIOD_US), "send", bed)
    if s.quiet:
        for bed, schedule in enumerate(s.schedules):
            for t, _ in schedule[1:]:
                at(t, "record", bed)
    for bed, start, down in s.reboots:
        at(start, "down", bed)
        at(start + down, "up", bed)
    grants = [0] * s.n
    while events and events[0][0] <= until:
        t = events[0][0]
        changed = set()
        while events and events[0][0] == t:  # everything at one instant, then the check
            _, _, kind, bed, payload = heapq.heappop(events)
            me = sim[bed]
            changed.add(bed)
            if kind == "send":
                at(t + PERIOD_US + rng.randint(-s.jitter, s.jitter), "send", bed)
            if kind in ("send", "record") and me.up:
                demand = demand_at(s.schedules[bed], t)
                me.own.advertise(demand, me.local(t))
                at(me.when(me.local(t) + SANCTUARY_HOLD_US), "check", bed)
                if kind == "send":
                    for peer in range(s.n):
                        lost = rng.random() < s.loss or any(
                            start <= t < start + length and who in (None, bed if by_sender else peer)
                            for start, length, who, by_sender in s.bursts
                        )
                        if peer != bed and not lost:
                            at(t + rng.randint(0, LATENCY_US), "receive", peer, (bed, demand))
            elif kind == "receive" and me.up:
                sender, demand = payload
                me.heard[sender] = (demand, me.local(t))
                at(me.when(me.local(t) + STALE_US), "check", bed)
            elif kind == "down":
                me.up = False
            elif kind == "up" and not me.up:
                me.up = True
                me.boot()
        for bed in changed:
            grant, effective, reserved, fresh = sim[bed].view(bed, t, s.n, s.budget)
            grants[bed] = grant
            if effective > 0 and s.budget - reserved >= fresh:  # the budget covers the reservations
                assert grant > 0, f"bed {bed} starved at {t} us"
        assert sum(grants) <= s.budget, f"over budget at {t} us: {grants}, budget {s.budget}"
    return grants


@SIMULATION
@given(sanctuaries())
def test_the_sanctuary_never_exceeds_its_budget_whatever_the_beacons_do(sanctuary):
    simulate(sanctuary, sanctuary.horizon + SANCTUARY_HOLD_US + STALE_US)


@SIMULATION
@given(sanctuaries(lossless=True))
def test_with_every_beacon_heard_the_beds_settle_on_the_common_fair_share(sanctuary):
    s = sanctuary
    last_change = max(schedule[-1][0] for schedule in s.schedules)
    # the new demand goes on air within a beacon interval and counts after the hold
    settled = last_change + PERIOD_US + s.jitter + LATENCY_US + SANCTUARY_HOLD_US + PERIOD_US
    final = {bed: demand_at(schedule, settled) for bed, schedule in enumerate(s.schedules)}
    expected = power_share.grants(s.budget, [(bed, demand, True) for bed, demand in final.items()], WORST_W)
    assert dict(enumerate(simulate(s, settled))) == expected
    occupied = [bed for bed, demand in final.items() if demand > 0]
    if s.budget >= len(occupied):  # a whole watt each at least
        assert all(expected[bed] > 0 for bed in occupied)


def test_the_same_grants_under_micropython():
    demands = [(9, 200, True), (2, 50, True), (5, 200, True), (4, 10, False), (7, 120, True)]
    code = (
        "import json, power_share\n"
        "own = power_share.OwnDemand(5000)\n"
        "own.advertise(90, 1000)\n"
        "own.advertise(300, 3000)\n"
        "held = [own.effective(5999), own.effective(6000), own.effective(8000)]\n"
        f"print(json.dumps([power_share.grants(700, {demands!r}, {WORST_W}), "
        f"power_share.own_grant(7, 700, 120, {demands[:4]!r}, 1, {WORST_W}), held]))"
    )
    grants, own_grant, held = run_micropython(code)
    assert {int(bed): grant for bed, grant in grants.items()} == power_share.grants(700, demands, WORST_W)
    assert own_grant == power_share.own_grant(7, 700, 120, demands[:4], 1, WORST_W)
    assert held == [0, 90, 300]
