"""Equal Rest: the sanctuary's power budget shared max-min fairly (water-filling).

Each bed advertises its demand in its beacons and caps its own drive to its own grant,
which it computes from what it has heard. Beacons get lost and arrive at different times,
so the beds' views differ; the sum of the grants still stays within the budget:

- A peer not heard within stale_us, or never heard, is reserved at its worst case.
- Water-filling is monotone: a bed's grant never rises when a peer's demand rises or a
  peer goes stale (tested). So if every bed counts each peer at least at the demand that
  peer uses for its own grant, each bed's grant is at most its grant in the common
  allocation of those own demands, and the sum is within the budget.
- A bed's own (effective) demand is the least demand it had advertised at any time in
  the last hold_us: a drop counts at once, a raise only once on air for hold_us. Choose hold_us
  above stale_us by a beacon period (delivery latency, clock rates), so every peer that
  still counts the bed fresh heard a value at least its effective demand. A bed that has
  just booted holds 0 for hold_us, since its peers may still count its former demand.

Recommended: stale_us = STALE_PERIODS beacon periods (a peer goes stale only after three
beacons in a row are lost, with +-200 ms jitter), hold_us = HOLD_PERIODS periods.
"""

from micropython import const

STALE_PERIODS = const(4)
HOLD_PERIODS = const(5)
_SLOTS = const(4)  # more raises within a hold only delay one of them


def grants(budget_w, demands, worst_case_w):
    """demands: [(bed_id, demand_w, fresh)]; return {bed_id: grant_w}. A stale bed's
    "grant" is the worst case reserved for it, which the budget pays first.

    The known beds' demands are met from the smallest up; when the rest of the budget
    cannot meet the others in full, they all get the same level, the largest whole number
    of watts that fits. Watts left over by that rounding go one each to the beds above the
    level in bed id order, so the result depends on the data, never on its order. This
    keeps monotonicity: the spare watts, budget - sum(min(demand, level)), only fall when a
    demand rises, while the beds above the level only get more, so no bed moves up the
    queue for them."""
    result = {}
    left = budget_w
    known = []
    for bed_id, demand_w, fresh in demands:
        if fresh:
            known.append((min(max(demand_w, 0), worst_case_w), bed_id))
        else:
            result[bed_id] = worst_case_w
            left -= worst_case_w
    left = max(left, 0)
    known.sort()
    waiting = len(known)
    level = 0
    for demand_w, _ in known:  # smallest first: met in full while the even share covers it
        if demand_w * waiting > left:
            level = left // waiting
            break
        left -= demand_w
        waiting -= 1
    else:
        level = None  # every demand met
    for demand_w, bed_id in known:
        result[bed_id] = demand_w if level is None or demand_w <= level else level
    if level is not None:  # the rounding's spare watts, one each, by bed id
        capped = sorted(bed_id for demand_w, bed_id in known if demand_w > level)
        for bed_id in capped[: left - level * waiting]:
            result[bed_id] += 1
    return result


def own_grant(bed_id, budget_w, own_demand_w, peers, unknown, worst_case_w):
    """This bed's grant for its effective demand. peers: [(bed_id, demand_w, fresh)], the
    latest demand heard from each other bed heard so far; unknown: how many of the
    sanctuary's other beds were never heard (each reserved at the worst case)."""
    demands = list(peers)
    demands.append((bed_id, own_demand_w, True))
    return grants(budget_w - unknown * worst_case_w, demands, worst_case_w)[bed_id]


class OwnDemand:
    """The bed's own demand with raises held down for hold_us (local microseconds, which
    never go back).

    A ring of (since, demand), demands rising: `demand` is the least demand in force from
    `since` up to now, for windows starting before the next entry's `since`. So the front,
    once the entries superseded before the window's start are dropped, is the effective
    demand, and the ring holds only raises (about one per beacon over a hold)."""

    def __init__(self, hold_us):
        self.hold_us = hold_us
        self._times = [0] * _SLOTS
        self._demands = [0] * _SLOTS
        self._n = 0

    def advertise(self, demand_w, local_us):
        """Record the demand a beacon puts on air at local_us: call as each own beacon
        is sent, with the value it carries (a call without a beacon is harmless)."""
        demand_w = max(demand_w, 0)
        times = self._times
        demands = self._demands
        if not self._n:  # 0 until now: after a reboot, peers may still count a former demand
            times[0] = local_us
            demands[0] = 0
            self._n = 1
        self._forget(local_us)
        n = self._n
        since = local_us
        while n and demands[n - 1] > demand_w:  # from their start on, this one is the least
            n -= 1
            since = times[n]
        if n and demands[n - 1] == demand_w:  # the least since that entry already
            self._n = n
            return
        if n == _SLOTS:  # full: the previous, lower demand stays in force longer, which is safe
            n -= 1
        times[n] = since
        demands[n] = demand_w
        self._n = n + 1

    def effective(self, local_us):
        """The demand this bed may use for its own grant at local_us."""
        self._forget(local_us)
        return self._demands[0] if self._n else 0

    def _forget(self, local_us):
        # Entries superseded before the window starts are no longer in force in it.
        start = local_us - self.hold_us
        times = self._times
        demands = self._demands
        n = self._n
        k = 0
        while k + 1 < n and times[k + 1] <= start:
            k += 1
        if k:
            for i in range(n - k):
                times[i] = times[i + k]
                demands[i] = demands[i + k]
            self._n = n - k
