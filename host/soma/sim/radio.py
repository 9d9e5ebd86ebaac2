"""The radio medium between virtual beds: ESP-NOW-like broadcast with random and bursty
loss, delay, jitter and partitions, and counters for all of it.

Loss per link (sender -> receiver) is independent (`loss`) and, optionally, bursty: a
Gilbert-Elliott channel whose bad state drops `burst_loss` of the frames, entered with
probability `p_enter_burst` per frame and left with `p_leave_burst` (mean burst length
1 / p_leave_burst frames). Partitions are groups of bed indexes that cannot hear beds of
another group.
"""

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass
class RadioSettings:
    loss: float = 0.0
    p_enter_burst: float = 0.0
    p_leave_burst: float = 0.25
    burst_loss: float = 1.0
    delay_s: float = 0.002  # air time and the receivers' stacks
    jitter_s: float = 0.001

    def __post_init__(self) -> None:
        for name in ("loss", "p_enter_burst", "p_leave_burst", "burst_loss"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"radio {name} must be a probability (0..1)")
        if self.delay_s < 0 or self.jitter_s < 0 or self.jitter_s > self.delay_s:
            raise ValueError("radio delay and jitter must be >= 0, with jitter <= delay")


class RadioMedium:
    def __init__(self, settings: RadioSettings | None = None, seed: int | str = 1) -> None:
        self.settings = settings or RadioSettings()
        self._rng = random.Random(f"radio/{seed}")
        self._bursting: dict[tuple[int, int], bool] = {}  # (sender, receiver) -> in the bad state
        self._in_flight: list[tuple[float, int, int, bytes]] = []  # heap of (deliver_at, order, receiver, payload)
        self._order = itertools.count()
        self._groups: dict[int, int] | None = None  # bed index -> partition group, or None: everyone hears everyone
        self.counts: Counter[str] = Counter()

    def partition(self, *groups: Iterable[int]) -> None:
        """Split the beds (indexes) into groups that cannot hear each other; no groups: heal."""
        self._groups = {bed: number for number, group in enumerate(groups) for bed in group} if groups else None

    def transmit(self, sender: int, payload: bytes, receivers: Iterable[int], now: float) -> None:
        """Broadcast `payload` from `sender` to every other bed index in `receivers`, sent
        at time `now` (s): each copy arrives after the medium's delay."""
        self.counts["sent"] += 1
        settings = self.settings
        for receiver in receivers:
            if receiver == sender:
                continue
            self.counts["attempts"] += 1
            if self._groups is not None and self._groups.get(sender) != self._groups.get(receiver):
                self.counts["partitioned"] += 1
                continue
            link = (sender, receiver)
            bursting = self._bursting.get(link, False)
            if bursting and self._rng.random() < settings.p_leave_burst:
                bursting = False
            elif not bursting and self._rng.random() < settings.p_enter_burst:
                bursting = True
            self._bursting[link] = bursting
            if bursting and self._rng.random() < settings.burst_loss:
                self.counts["lost_burst"] += 1
                continue
            if self._rng.random() < settings.loss:
                self.counts["lost_random"] += 1
                continue
            delay = settings.delay_s + self._rng.uniform(-settings.jitter_s, settings.jitter_s)
            heapq.heappush(self._in_flight, (now + delay, next(self._order), receiver, payload))

    def due(self, now: float) -> list[tuple[int, bytes, float]]:
        """(receiver, payload, arrival time) of every frame whose arrival time has come."""
        delivered: list[tuple[int, bytes, float]] = []
        while self._in_flight and self._in_flight[0][0] <= now:
            arrived, _, receiver, payload = heapq.heappop(self._in_flight)
            delivered.append((receiver, payload, arrived))
        self.counts["delivered"] += len(delivered)
        return delivered
