"""Discrete-event simulation of the firmware's time sync (firmware/timesync.py, unchanged)
on a virtual clock: any number of beds, each with its own clock rate and offset, beaconing
once a period with jitter over a lossy, delaying medium, single-hop or multi-hop.

Every bed's true clock transform is known here, so the error between two beds' global
time estimates at the same true instant is exact, not host scheduling noise.

    net = SyncNetwork(beds=16, seed=1, loss=0.2)
    net.run(seconds=60)
    net.pairwise_errors_us(after_s=20)   # every pair of beds at every sample instant
"""

import heapq
import itertools
import random
from collections.abc import Callable, Iterable
from typing import Protocol

from soma import paths


class TimeSyncApi(Protocol):
    """What the simulation uses of firmware/timesync.py's TimeSync (imported at run time)."""

    root_id: int

    @property
    def synced(self) -> bool: ...

    def global_us(self, local_us: int) -> int: ...

    def on_beacon(
        self, sender_id: int, root_id: int, root_seq: int, hops: int, global_at_send_us: int, local_rx_us: int
    ) -> bool: ...

    def beacon_fields(self, local_now_us: int) -> tuple[int, int, int, int]: ...

    def period(self, local_now_us: int) -> None: ...


# TimeSync(bed_id, period_us, latency_us)
TimeSync: Callable[[int, int, int], TimeSyncApi] = paths.import_firmware_module("timesync").TimeSync

PERIOD_US = 1_000_000
# A beacon heard: (sender id, root id, root seq, hops, global time at send us)
BeaconPayload = tuple[int, int, int, int, int]
# (true us, order, kind, bed index, payload): the order breaks ties, first scheduled first
Event = tuple[int, int, str, int, BeaconPayload | None]


class Bed:
    def __init__(self, bed_id: int, drift_ppm: float, offset_us: int, latency_us: int) -> None:
        self.bed_id = bed_id
        self.rate = 1.0 + drift_ppm / 1e6
        self.offset_us = offset_us
        self.sync = TimeSync(bed_id, PERIOD_US, latency_us)
        self.alive = True

    def local_us(self, true_us: int) -> int:
        return int(true_us * self.rate) + self.offset_us


class SyncNetwork:
    """Beds 0..N-1 (bed id = index + 1). `neighbours(i)` -> the beds that hear bed i:
    everyone (single hop) by default; `line` or `grid` topologies make multi-hop."""

    def __init__(
        self,
        beds: int,
        seed: int | str = 1,
        loss: float = 0.2,
        drift_ppm: float = 50,
        delay_us: tuple[int, int] = (2_000, 1_000),  # as the simulator's radio medium: 2 ms +- 1 ms
        late_chance: float = 0.05,
        late_us: int = 20_000,
        topology: str = "single",
    ) -> None:
        rng = random.Random(f"sync-des/{seed}")
        self.rng = rng
        self.loss = loss
        self.delay_us = delay_us
        self.late_chance = late_chance
        self.late_us = late_us
        least_delay = delay_us[0] - delay_us[1]  # what the board declares as its radio latency
        self.beds = [
            Bed(i + 1, rng.uniform(-drift_ppm, drift_ppm), rng.randrange(1 << 30), least_delay) for i in range(beds)
        ]
        self.hearers = [self._hearers(i, beds, topology) for i in range(beds)]
        self.now_us = 0
        self._events: list[Event] = []
        self._order = itertools.count()
        for index in range(beds):
            self._at(rng.randrange(PERIOD_US), "beacon", index)
        # (true time, [global estimate of every live, synced bed or None], all live beds on one root)
        self.samples: list[tuple[int, list[int | None], bool]] = []
        self._groups: dict[int, int] | None = None

    @staticmethod
    def _hearers(index: int, beds: int, topology: str) -> list[int]:
        if topology == "single":
            return [j for j in range(beds) if j != index]
        if topology == "line":
            return [j for j in (index - 1, index + 1) if 0 <= j < beds]
        if topology == "grid":
            side = max(1, round(beds**0.5))
            row, col = divmod(index, side)
            around = [(row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1)]
            return [r * side + c for r, c in around if 0 <= r and 0 <= c < side and r * side + c < beds]
        raise ValueError(f"unknown topology {topology!r} (single, line, grid)")

    def _at(self, true_us: int, kind: str, index: int, payload: BeaconPayload | None = None) -> None:
        heapq.heappush(self._events, (true_us, next(self._order), kind, index, payload))

    def kill(self, index: int) -> None:
        self.beds[index].alive = False

    def partition(self, *groups: Iterable[int]) -> None:
        """Beds (indexes) in different groups stop hearing each other; no groups: heal."""
        self._groups = {bed: number for number, group in enumerate(groups) for bed in group} if groups else None

    def run(self, seconds: float, sample_every_us: int = 100_000) -> None:
        end = self.now_us + int(seconds * 1e6)
        next_sample = self.now_us + sample_every_us
        while self._events and self._events[0][0] <= end:
            true_us, _, kind, index, payload = heapq.heappop(self._events)
            while next_sample <= true_us:
                self._sample(next_sample)
                next_sample += sample_every_us
            self.now_us = true_us
            bed = self.beds[index]
            if kind == "beacon":
                self._at(true_us + PERIOD_US + self.rng.randrange(-20_000, 20_000), "beacon", index)
                if bed.alive:
                    local = bed.local_us(true_us)
                    bed.sync.period(local)
                    self._broadcast(index, bed.sync.beacon_fields(local))
            elif kind == "receive" and bed.alive and payload is not None:  # a receive carries its beacon
                bed.sync.on_beacon(*payload, bed.local_us(true_us))  # (sender id, beacon fields)
        self.now_us = end

    def _broadcast(self, sender: int, fields: tuple[int, int, int, int]) -> None:
        base, jitter = self.delay_us
        for receiver in self.hearers[sender]:
            if self._groups is not None and self._groups.get(sender) != self._groups.get(receiver):
                continue
            if self.rng.random() < self.loss:
                continue
            delay = base + self.rng.randrange(-jitter, jitter + 1)
            if self.rng.random() < self.late_chance:  # the receiver was busy (GC, a long tick)
                delay += self.rng.randrange(self.late_us)
            self._at(self.now_us + delay, "receive", receiver, (self.beds[sender].bed_id, *fields))

    def _sample(self, true_us: int) -> None:
        live = [bed for bed in self.beds if bed.alive]
        estimates = [
            bed.sync.global_us(bed.local_us(true_us)) if bed.alive and bed.sync.synced else None for bed in self.beds
        ]
        root = min(bed.bed_id for bed in live) if live else None
        agreed = all(bed.sync.root_id == root for bed in live)
        self.samples.append((true_us, estimates, agreed))

    def pairwise_errors_us(self, after_s: float = 0.0, pairs_per_sample: int | None = None) -> list[int]:
        """|estimate_i - estimate_j| for every pair of synced live beds at every sample
        instant after `after_s` seconds; with `pairs_per_sample`, that many random pairs
        per instant plus the worst (a fair sample of the distribution for large networks)."""
        errors: list[int] = []
        for true_us, estimates, _ in self.samples:
            if true_us < after_s * 1e6:
                continue
            known = sorted(value for value in estimates if value is not None)
            if len(known) < 2:
                continue
            if pairs_per_sample is None:
                errors += [b - a for i, a in enumerate(known) for b in known[i + 1 :]]
            else:
                errors.append(known[-1] - known[0])
                for _ in range(pairs_per_sample):
                    a, b = self.rng.sample(known, 2)
                    errors.append(abs(a - b))
        return errors

    def synced_after_periods(self) -> float | None:
        """Beacon periods until every live bed was synced and on the lowest live id's root."""
        for true_us, estimates, agreed in self.samples:
            live = [value for bed, value in zip(self.beds, estimates, strict=True) if bed.alive]
            if agreed and all(value is not None for value in live):
                return true_us / PERIOD_US
        return None
