"""Equal Rest water-filling (firmware/power_share.py), with hypothesis: the grants never
exceed the budget (stale peers counted at their worst case), are max-min fair, never
exceed a demand, do not depend on the order of the data, and are monotone (what makes
differing views safe); the own demand's hold-down against a reference; the join window
(beds never heard reserved, then counted out; a late bed held); a simulated sanctuary with
jittered, lost and late beacons, reboots, beds that appear after the join window, a
program whose bed count is too high or too low, and drifting clocks, where the sum of the
beds' own grants stays within the budget at every instant and settles on the common
max-min fair allocation; and the same under MicroPython."""

import heapq
import itertools
import random
from bisect import bisect_right
from types import SimpleNamespace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import power_share
from mpexec import run_micropython
from soma_protocol.enums import ShareFlags

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


# --- the join window ----------------------------------------------------------------------

S = PERIOD_US = 1_000_000
JOIN_US = power_share._JOIN_PERIODS * PERIOD_US  # private in the firmware: a public name costs a qstr
JOINING, LATE, ALONE = (int(flag) for flag in (ShareFlags.joining, ShareFlags.late, ShareFlags.alone))


def membership(declared, heard, local_us, booted_us, global_us, synced=True):
    """(flags, beds never heard reserved) for a program starting at 0."""
    flags, unheard, until = power_share.membership(
        declared, heard, local_us, booted_us, global_us, 0, synced, PERIOD_US
    )
    assert until == max(0, global_us - local_us + booted_us) + JOIN_US  # the later window's end
    return flags, unheard


def test_never_heard_beds_are_reserved_for_the_join_window_only():
    # night.toml's 8 beds, 1 peer heard: 6 reserved from boot through the program's window
    assert membership(8, 1, 5 * S, 0, -60 * S) == (JOINING, 6)  # before the start
    assert membership(8, 1, 100 * S, 0, JOIN_US - 1) == (JOINING, 6)
    assert membership(8, 1, 100 * S, 0, JOIN_US) == (0, 0)  # then counted out
    assert membership(8, 3, 100 * S, 0, JOIN_US) == (0, 0)
    assert membership(2, 5, 5 * S, 0, 0) == (JOINING, 0)  # more beds heard than the program says
    # a bed that hears no peer cannot tell being alone from being cut off: it keeps them
    assert membership(8, 0, 100 * S, 0, 10 * JOIN_US) == (ALONE, 7)
    assert membership(1, 0, 100 * S, 0, 10 * JOIN_US) == (ALONE, 0)


def test_a_bed_booted_after_the_window_is_late_and_reserves_until_its_own_ends():
    booted = 1_000 * S
    assert membership(8, 1, booted, booted, 2 * JOIN_US) == (JOINING | LATE, 6)
    assert membership(8, 1, booted + JOIN_US - 1, booted, 3 * JOIN_US) == (JOINING | LATE, 6)
    assert membership(8, 1, booted + JOIN_US, booted, 3 * JOIN_US) == (0, 0)
    # booted within the program's window: not late while the window lasts (every bed reserves
    # the beds it never heard), late after it until its own window has passed
    assert membership(2, 1, booted, booted, JOIN_US // 2) == (JOINING, 0)
    assert membership(2, 1, booted + JOIN_US // 2, booted, JOIN_US) == (JOINING | LATE, 0)
    # the program's window is trusted only on a synced clock
    assert membership(2, 1, booted, booted, 0, synced=False) == (JOINING | LATE, 0)


# --- a simulated sanctuary ----------------------------------------------------------------

STALE_US = power_share.STALE_PERIODS * PERIOD_US
SANCTUARY_HOLD_US = power_share.HOLD_PERIODS * PERIOD_US
LATENCY_US = 5_000  # a beacon's advertisement to its reception timestamp: air, stack, queue
SIMULATION = settings(max_examples=300)  # each example runs a whole sanctuary for tens of seconds

demand_values = st.one_of(st.sampled_from([0, 0, WORST_W]), st.integers(-10, WORST_W + 50))


@st.composite
def sanctuaries(draw, lossless=False, late=False):
    """Beds with drifting clocks, each demand a step function, beacons every period with
    jitter, each delivery lost at random and in bursts (per sender, receiver or all), beds
    that reboot; quiet beds also record each demand change at once, between beacons. The
    program starts at 0 and counts `declared` beds: the beds there are, more (never heard),
    or fewer (lossless only). late: some beds are off until about the join window's end."""
    n = draw(st.integers(2, 12))
    horizon = draw(st.integers(5, 25)) * PERIOD_US
    times = st.integers(0, horizon)
    late_beds = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n - 1, unique=True)) if late else []
    # a late bed appears after the others' window, or just before it ends
    appear = {bed: draw(st.integers(JOIN_US - 3 * PERIOD_US, JOIN_US + 20 * PERIOD_US)) for bed in late_beds}
    if late:
        horizon += max(appear.values()) + JOIN_US
        times = st.integers(0, horizon)

    def schedule():
        return sorted(draw(st.lists(st.tuples(times, demand_values), max_size=6)) + [(0, draw(demand_values))])

    return SimpleNamespace(
        n=n,
        # the guarantee asks for a program counting every bed there is (`soma program upload`
        # raises it to the beds heard); with every beacon heard fewer do as well
        declared=draw(st.sampled_from([n, n + 6] + ([1, max(1, n - len(late_beds))] if lossless else []))),
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
        )
        # a late bed's first beacons may reach nobody for a while
        + [(appear[bed], draw(st.integers(0, 12 * PERIOD_US)), bed, True) for bed in late_beds],
        reboots=[]
        if lossless
        else draw(st.lists(st.tuples(st.integers(0, n - 1), times, st.integers(0, 3 * PERIOD_US)), max_size=3)),
        appear=appear,
        rng=draw(st.randoms(use_true_random=False)),
    )


class SimBed:
    def __init__(self, offset, ppm):
        self.offset = offset
        self.ppm = ppm
        self.up = True
        self.boots = 0
        self.boot(0)

    def boot(self, t):
        self.boots += 1
        self.own = power_share.OwnDemand(SANCTUARY_HOLD_US)
        self.heard = {}  # peer -> (latest demand heard, local time heard)
        self.epochs = {}  # peer -> its boots when its beacons were last heard
        self.counts_me = set()  # peers that named this bed since they (re)started
        self.heard_of = set()  # beds named by a peer, never heard: reserved at worst case
        self.naming = 0
        self.booted = self.local(t)

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

    def named(self):
        """The bed this beacon names as counted, in turn (None: none)."""
        counted = [*self.heard, *sorted(self.heard_of)]
        if not counted:
            return None
        self.naming += 1
        return counted[self.naming % len(counted)]

    def hear(self, me, sender, demand, epoch, named, local_us):
        if self.epochs.get(sender) != epoch:  # new here, or restarted: it has to name this bed again
            self.counts_me.discard(sender)
            self.epochs[sender] = epoch
        self.heard_of.discard(sender)
        self.heard[sender] = (demand, local_us)
        if named == me:
            self.counts_me.add(sender)
        elif named is not None and named not in self.heard:
            self.heard_of.add(named)

    def view(self, bed_id, t, declared, budget):
        """(own grant, effective own demand, reserved watts, fresh beds, held) at true time t
        (the global clock: the beds are synced)."""
        if not self.up:
            return 0, 0, 0, 0, True
        now = self.local(t)
        peers = [(peer, demand, now - heard < STALE_US) for peer, (demand, heard) in self.heard.items()]
        counted = len(peers) + len(self.heard_of)
        share, unheard, _ = power_share.membership(declared, counted, now, self.booted, t, 0, True, PERIOD_US)
        held = bool(share & LATE) or any(peer not in self.counts_me for peer in self.heard)
        effective = 0 if held else self.own.effective(now)
        reserved = unheard + len(self.heard_of)
        grant = power_share.own_grant(bed_id, budget, effective, peers, reserved, WORST_W)
        fresh = 1 + sum(1 for peer in peers if peer[2])
        return grant, effective, WORST_W * (reserved + len(peers) + 1 - fresh), fresh, held


def demand_at(schedule, t):
    return schedule[bisect_right(schedule, (t, float("inf"))) - 1][1]


def simulate(sanctuary, until):
    """Run the sanctuary to `until` (true us); check the budget and that no occupied bed is
    starved (unless held: late, or not yet named by every peer it hears) at every instant
    where any bed's view changes; return the final grants."""
    s, rng = sanctuary, sanctuary.rng
    sim = [SimBed(offset, ppm) for offset, ppm in s.clocks]
    events = []  # (true time, order, kind, bed, payload)
    order = itertools.count()

    def at(t, kind, bed, payload=None):
        heapq.heappush(events, (t, next(order), kind, bed, payload))

    for bed in range(s.n):
        at(rng.randrange(PERIOD_US), "send", bed)
        at(JOIN_US, "check", bed)  # the program's join window ends
        at(sim[bed].when(sim[bed].booted + JOIN_US), "check", bed)  # and the bed's own
    if s.quiet:
        for bed, schedule in enumerate(s.schedules):
            for t, _ in schedule[1:]:
                at(t, "record", bed)
    for bed, start, down in s.reboots:
        at(start, "down", bed)
        at(start + down, "up", bed)
    for bed, start in s.appear.items():
        sim[bed].up = False  # off from the start
        at(start, "up", bed)
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
                    beacon = (bed, demand, me.boots, me.named())
                    for peer in range(s.n):
                        lost = rng.random() < s.loss or any(
                            start <= t < start + length and who in (None, bed if by_sender else peer)
                            for start, length, who, by_sender in s.bursts
                        )
                        if peer != bed and not lost:
                            at(t + rng.randint(0, LATENCY_US), "receive", peer, beacon)
            elif kind == "receive" and me.up:
                me.hear(bed, *payload, me.local(t))
                at(me.when(me.local(t) + STALE_US), "check", bed)
            elif kind == "down":
                me.up = False
            elif kind == "up" and not me.up:
                me.up = True
                me.boot(t)
                at(me.when(me.booted + JOIN_US), "check", bed)
        for bed in changed:
            grant, effective, reserved, fresh, held = sim[bed].view(bed, t, s.declared, s.budget)
            grants[bed] = grant
            if effective > 0 and not held and s.budget - reserved >= fresh:  # the budget covers the reservations
                assert grant > 0, f"bed {bed} starved at {t} us"
        assert sum(grants) <= s.budget, f"over budget at {t} us: {grants}, budget {s.budget}"
    return grants


@SIMULATION
@given(sanctuaries())
def test_the_sanctuary_never_exceeds_its_budget_whatever_the_beacons_do(sanctuary):
    simulate(sanctuary, sanctuary.horizon + SANCTUARY_HOLD_US + STALE_US)


@SIMULATION
@given(sanctuaries(late=True))
def test_beds_appearing_after_the_join_window_never_take_the_sanctuary_over_budget(sanctuary):
    # The others have counted out the beds they never heard; a late bed draws nothing
    # until its own window has passed, by which time they hear it (bursts of loss are
    # shorter than a window), and from then on everyone counts it.
    simulate(sanctuary, sanctuary.horizon + SANCTUARY_HOLD_US + STALE_US)


def test_a_late_bed_nobody_hears_at_first_draws_nothing_until_they_count_it():
    # Beds 0 and 1 share 480 W at full demand; bed 2 appears after the join window and its
    # first 12 beacons reach nobody. Drawing its share of three at once (160 W) would take
    # the sanctuary to 640 W: it waits until both have named it (and its own window).
    sanctuary = SimpleNamespace(
        n=3,
        declared=3,
        budget=480,
        horizon=80 * S,
        jitter=0,
        clocks=[(0, 0), (7, 20), (3 * S, -30)],
        schedules=[[(0, WORST_W)]] * 3,
        quiet=False,
        loss=0.0,
        bursts=[(25 * S, 12 * S, 2, True)],
        reboots=[],
        appear={2: 25 * S},
        rng=random.Random(1),
    )
    assert simulate(sanctuary, 80 * S) == [160, 160, 160]


@SIMULATION
@given(st.one_of(sanctuaries(lossless=True), sanctuaries(lossless=True, late=True)))
def test_with_every_beacon_heard_the_beds_settle_on_the_common_fair_share(sanctuary):
    s = sanctuary
    last_change = max([schedule[-1][0] for schedule in s.schedules] + [t + JOIN_US for t in s.appear.values()])
    # the new demand goes on air within a beacon interval and counts after the hold; the
    # beds never heard are counted out once the join window has passed
    settled = max(last_change + PERIOD_US + s.jitter + LATENCY_US + SANCTUARY_HOLD_US, JOIN_US) + PERIOD_US
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
        f"windows = [power_share.membership(*case) for case in {MEMBERSHIP_CASES!r}]\n"
        f"print(json.dumps([power_share.grants(700, {demands!r}, {WORST_W}), "
        f"power_share.own_grant(7, 700, 120, {demands[:4]!r}, 1, {WORST_W}), held, windows]))"
    )
    grants, own_grant, held, windows = run_micropython(code)
    assert {int(bed): grant for bed, grant in grants.items()} == power_share.grants(700, demands, WORST_W)
    assert own_grant == power_share.own_grant(7, 700, 120, demands[:4], 1, WORST_W)
    assert held == [0, 90, 300]
    # the join window on the ESP32's clock values: local and global times as big ints
    assert [tuple(window) for window in windows] == [power_share.membership(*case) for case in MEMBERSHIP_CASES]
    assert {tuple(window[:2]) for window in windows} == {(JOINING, 6), (0, 0), (JOINING | LATE, 6), (ALONE, 7)}


BIG = 1 << 40  # a clock well past 31-bit small ints
MEMBERSHIP_CASES = [
    (8, 1, BIG, BIG, BIG, BIG - 1, True, PERIOD_US),  # just booted, in the program's window
    (8, 1, BIG + JOIN_US, BIG, BIG + JOIN_US, BIG - 1, True, PERIOD_US),  # both windows over
    (8, 1, BIG, BIG, BIG + JOIN_US, BIG - 1, True, PERIOD_US),  # booted after the program's: late
    (8, 0, BIG + JOIN_US, BIG, BIG + JOIN_US, BIG - 1, True, PERIOD_US),  # alone
]
