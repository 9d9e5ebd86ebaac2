"""Measuring a simulated sanctuary from the outside, without fooling ourselves.

Every bed streams telemetry with its global-time estimate and the reading of its own
board clock it belongs to (local_ticks_us). The world knows each unit's clock exactly
(offset and drift from a common epoch), so each sample becomes an exact pair (true host
time, the bed's global time), whatever the serial line's latency. A bed's error against
true time, e(t) = global(t) - t, changes slowly (its skew), so it is interpolated between
its samples; the pairwise error of two beds at an instant is |e_i - e_j|.

The ushering's onset is the world's record of each bed's haptic output switching on, at
the instant the bed's clock says it did (actuator events, not host scheduling). Equal
Rest is the sum of the pads' electrical power the world sees, against the budget.

    with Sanctuary(beds=16, flashed=True, radio=RadioSettings(loss=0.2)) as sanctuary:
        watch = SanctuaryWatch(sanctuary, key)
        watch.provision()          # every bed joins (and restarts into) the sanctuary
        watch.start()              # telemetry from every bed, in a thread
        ...
        watch.pairwise_errors_us(after_s=30)
"""

import bisect
import threading
import time
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Self, TypeVar

from soma.link.management import TELEMETRY, ManagementTimeout
from soma.link.serial_link import SerialLink
from soma.sim.world import HAPTIC
from soma_protocol.enums import BeaconFlags

if TYPE_CHECKING:
    from soma.sim.sanctuary import Sanctuary, SimBed

T = TypeVar("T")
# (true host time s, global time us, sync flags, root id) of one telemetry frame
Sample = tuple[float, int, int, int]

SAMPLE_PERIOD_MS = 100
SYNCED = int(BeaconFlags.synced)
_TELEMETRY_TICKS = TELEMETRY["local_ticks_us"]
_TELEMETRY_GLOBAL = TELEMETRY["global_time_us"]
_TELEMETRY_FLAGS = TELEMETRY["sync_flags"]
_TELEMETRY_ROOT = TELEMETRY["sync_root_id"]
_TELEMETRY_HEAP = TELEMETRY["heap_used_bytes"]


def snapshot(items: Iterable[T]) -> list[T]:
    """A list copy of a deque another thread appends to (a copy can meet an append: again)."""
    while True:
        try:
            return list(items)
        except RuntimeError:
            continue


class BedTrack:
    """One bed's line and what it reported: (true host time s, global us, flags, root id)."""

    def __init__(self, bed: "SimBed", link: SerialLink) -> None:
        self.bed = bed
        self.link = link
        self.client = link.management()
        self.samples: list[Sample] = []
        self.frames: list[tuple[float, list[int]]] = []  # (true host time s, telemetry values): everything it reported
        self.grants: list[tuple[float, int]] = []  # (host time s, its Equal Rest grant W), while sample_grants runs
        self.heap_used_max = 0  # the most heap the bed reported in use (after its collections)


class SanctuaryWatch:
    def __init__(self, sanctuary: "Sanctuary", key: bytes, sanctuary_id: int = 7) -> None:
        self.sanctuary = sanctuary
        self.key = key
        self.sanctuary_id = sanctuary_id
        self.tracks = [BedTrack(bed, SerialLink(bed.port)) for bed in sanctuary.beds]
        self.started_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # ---- driving the beds

    def provision(self, timeout: float = 30.0) -> float:
        """Give every bed the key and its id (1, 2, ...), in parallel; each restarts into the
        sanctuary. Returns the host time by which all of them answered again."""
        errors: list[str] = []

        def one(number: int, track: BedTrack) -> None:
            try:
                track.client.provision(self.sanctuary_id, number, self.key, timeout=timeout)
            except (ManagementTimeout, RuntimeError) as exc:
                errors.append(f"bed {number}: {exc}")

        threads = [threading.Thread(target=one, args=(n, t)) for n, t in enumerate(self.tracks, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise RuntimeError("; ".join(errors))
        return time.monotonic()

    def start(self) -> Self:
        """Telemetry at 10 Hz from every bed, gathered in a thread."""
        for track in self.tracks:
            track.client.request("telemetry_control", [SAMPLE_PERIOD_MS], timeout=5)
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._gather, name="sanctuary-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for track in self.tracks:
            track.link.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _gather(self) -> None:
        while not self._stop.is_set():
            quiet = True
            for track in self.tracks:
                with self._lock:
                    track.client.poll(0)
                    frames = list(track.client.telemetry)
                    track.client.telemetry.clear()
                now = time.monotonic()
                world = track.bed.world
                for values in frames:
                    quiet = False
                    at = world.host_time(values[_TELEMETRY_TICKS], now)
                    sample = (at, values[_TELEMETRY_GLOBAL], values[_TELEMETRY_FLAGS], values[_TELEMETRY_ROOT])
                    track.samples.append(sample)
                    track.frames.append((at, values))
                    track.heap_used_max = max(track.heap_used_max, values[_TELEMETRY_HEAP])
            if quiet:
                time.sleep(0.01)

    # Any: a response's values as the codec (construct, untyped) decodes them; they depend on `message`.
    def request(self, number: int, message: str, values: Sequence[object] = (), timeout: float = 5.0) -> list[Any]:
        """A management request to bed `number` (1, 2, ...) while the watch runs."""
        track = self.tracks[number - 1]
        with self._lock:
            return track.client.request(message, values, timeout=timeout)

    def request_fields(
        self, number: int, message: str, values: Sequence[object] = (), timeout: float = 5.0
    ) -> dict[str, Any]:
        track = self.tracks[number - 1]
        with self._lock:
            return track.client.request_fields(message, values, timeout=timeout)

    # ---- what the samples say

    def errors_at(self, at: float, numbers: Collection[int] | None = None) -> list[float | None]:
        """Each live, synced bed's global-time error against true time at host time `at`
        (us), interpolated between its samples; None where a bed has no synced pair of
        samples around `at`."""
        out: list[float | None] = []
        for number, track in enumerate(self.tracks, 1):
            if numbers is not None and number not in numbers:
                continue
            samples = track.samples
            i = bisect.bisect(samples, (at,))
            if i == 0 or i >= len(samples):
                out.append(None)
                continue
            (t0, g0, f0, r0), (t1, g1, f1, r1) = samples[i - 1], samples[i]
            if not (f0 & SYNCED and f1 & SYNCED) or r0 != r1 or t1 - t0 > 0.5:
                out.append(None)
                continue
            e0, e1 = g0 - t0 * 1e6, g1 - t1 * 1e6
            out.append(e0 + (e1 - e0) * (at - t0) / (t1 - t0))
        return out

    def pairwise_errors_us(
        self, start: float, end: float, step: float = 0.1, numbers: Collection[int] | None = None
    ) -> list[float]:
        """|e_i - e_j| over every pair of synced beds, every `step` s in [start, end]."""
        errors: list[float] = []
        at = start
        while at <= end:
            known = sorted(e for e in self.errors_at(at, numbers) if e is not None)
            errors += [b - a for i, a in enumerate(known) for b in known[i + 1 :]]
            at += step
        return errors

    def agreed(self, at: float, numbers: Collection[int], limit_us: float = 2_000) -> bool:
        """Every bed in `numbers` synced on one root, within `limit_us` of each other."""
        roots: set[int] = set()
        for number in numbers:
            samples = self.tracks[number - 1].samples
            i = bisect.bisect(samples, (at,))
            if i == 0:
                return False
            _, _, flags, root = samples[i - 1]
            if not flags & SYNCED:
                return False
            roots.add(root)
        errors = self.errors_at(at, numbers)
        known = [error for error in errors if error is not None]
        if len(roots) != 1 or len(known) != len(errors):
            return False
        return max(known) - min(known) <= limit_us

    def settled_after(
        self, since: float, numbers: Collection[int], until: float, hold: float = 5.0, step: float = 0.1
    ) -> float | None:
        """Seconds from `since` to the first instant from which the beds in `numbers` stay
        agreed (see agreed) for `hold` seconds; None if that never happens before `until`."""
        at = since
        while at + hold <= until:
            ahead = 0.0
            while ahead <= hold and self.agreed(at + ahead, numbers):
                ahead += step
            if ahead > hold:
                return at - since
            at += ahead + step  # the first instant that failed, then on
        return None

    def onsets(self, after: float) -> list[float | None]:
        """Per bed, the host time its haptic output first switched on after `after`, as the
        bed's own clock placed it (the world's actuator events)."""
        out: list[float | None] = []
        for track in self.tracks:
            events = snapshot(track.bed.world.output_events)
            on = [at for at, channel, level in events if channel == HAPTIC and level > 0 and at > after]
            out.append(min(on) if on else None)
        return out
