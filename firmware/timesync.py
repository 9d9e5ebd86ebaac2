"""Beacon time sync, FTSP-style: every bed follows the sanctuary's root clock.

The root is the lowest bed id heard: it floods its clock in its beacons (root id, a root
sequence number that only it advances, its global time at sending). A bed that hears a
newer root sequence takes the sender's global time at sending and its own local time at
reception as one point of its regression table (local -> offset = global - local), fits
offset and skew by least squares, and so estimates global time from its local clock; its
own beacons carry the root's sequence on, one hop further.

Reception timestamps come late, never early (radio stack, scheduler, GC), so a point's
offset reads low by its delay. As Klipper's clocksync keeps the fastest round trip, the
fit keeps the least-delayed points: the rate is a least-squares slope through the best
point of each WINDOW_PERIODS-period window (minima are far steadier than single points),
and the offset line goes through the best of the recent points (min filtering). The
board's least radio latency is added back. A bed takes points from the beds nearest the
root it hears (a forward carries its sender's error too), farther ones only when those
fall silent. A point far above the line is a clock step: refused, and after a few in a
row the tables start afresh. The slope is bounded by what two crystals can differ.

Once synced, changes of the estimate are slewed, not stepped: the global time a bed
reports moves by at most SLEW_PPM of elapsed time towards the new fit. A bed that hears
nothing from its root for ROOT_SILENT_PERIODS beacon periods takes over as root (keeping
its current estimate, so the sanctuary's clock continues); a lower id, once heard, wins.

Times are 64-bit microsecond counts from timebase.LocalTime: big ints on the ESP32 after
17 minutes, so this runs once per beacon, off the sample path.
"""

from micropython import const

TABLE = const(16)  # recent points: the offset
SKEW_TABLE = const(16)  # the least-delayed point of each window: the rate
WINDOW_PERIODS = const(4)
SYNCED_AFTER = const(4)  # points in the table before the bed counts as synced
JUMP_US = const(20_000)  # a point this far above the fit: the root's clock moved
REJECTS_TO_RESTART = const(3)  # jumps in a row before the table starts afresh
STALE_PERIODS = const(3)  # parents unheard this long: points from farther away count
MAX_SKEW_PPB = const(200_000)  # two crystals of +-50 ppm differ by 100 ppm at most: twice that
ROOT_SILENT_PERIODS = const(4)
SLEW_PPM = const(2_000)  # the reported time converges at most 2 ms per second
MIN_SPREAD_US = const(2_000_000)  # a slope needs points this far apart; until then the old one


class TimeSync:
    def __init__(self, bed_id, period_us, latency_us):
        """`latency_us`: the radio's least delay from stamping a beacon to receiving it
        (a board constant); the fit follows the least-delayed beacons, so this is what
        their timestamps lack."""
        self.bed_id = bed_id
        self.period_us = period_us
        self.latency_us = latency_us
        self.root_id = bed_id
        self.root_seq = 0
        self.hops = 0  # beacon hops from the root (0: this bed is the root)
        self._local = [0] * TABLE
        self._offset = [0] * TABLE
        self._count = 0
        self._next = 0
        self._skew_local = [0] * SKEW_TABLE
        self._skew_offset = [0] * SKEW_TABLE
        self._skew_count = 0
        self._skew_next = 0
        self._window_start = 0
        self._window_best = None  # (local, offset, offset brought to the window's start)
        # the fit: offset(local) = base_offset + (local - base_local) * skew_ppb / 1e9
        self._base_local = 0
        self._base_offset = 0
        self._skew_ppb = 0
        self._slew_us = 0  # what the reported time still owes the fit (reported - fitted)
        self._slewed_at = 0
        self._heard_root_at = 0
        self._silent_root = -1  # the last root this bed gave up on, and its last sequence
        self._silent_seq = 0
        self._rejected = 0
        self.dropped = 0  # points gated out as delayed or jumps

    # ---- what the rest of the firmware asks

    @property
    def is_root(self):
        return self.root_id == self.bed_id

    @property
    def synced(self):
        return self.is_root or self._count >= SYNCED_AFTER

    @property
    def skew_ppb(self):
        return self._skew_ppb

    def global_us(self, local_us):
        """This bed's estimate of the sanctuary's global time at local time `local_us`."""
        return self._fitted(local_us) + self._slew_at(local_us)

    # ---- beacons

    def on_beacon(self, root_id, root_seq, hops, global_at_send_us, local_rx_us):
        """An accepted beacon's sync fields, with this bed's local time at reception.
        Return True if it was taken as a sync point."""
        if root_id > self.root_id or root_id == self.bed_id:
            return False  # a worse root (it will learn ours), or our own flood coming back
        if root_id == self._silent_root and root_seq <= self._silent_seq:
            return False  # old news of a root that fell silent (still echoing through others)
        if root_id < self.root_id:
            self._follow(root_id, local_rx_us)
        elif root_seq <= self.root_seq:
            return False  # this flood was taken already (or is a replay of an old one)
        elif hops + 1 > self.hops and local_rx_us - self._heard_root_at < STALE_PERIODS * self.period_us:
            return False  # farther from the root than our parents, who are still heard
        self.root_seq = root_seq
        self.hops = hops + 1
        self._heard_root_at = local_rx_us
        offset = global_at_send_us + self.latency_us - local_rx_us
        if self._count >= SYNCED_AFTER and offset - self._fitted_offset(local_rx_us) > JUMP_US:
            # The root's clock moved (or ours). Several in a row: start afresh.
            self.dropped += 1
            self._rejected += 1
            if self._rejected < REJECTS_TO_RESTART:
                return False
            self._restart()
        else:
            self._rejected = 0
        before = self.global_us(local_rx_us) if self._count >= SYNCED_AFTER else None
        self._local[self._next] = local_rx_us
        self._offset[self._next] = offset
        self._next = (self._next + 1) % TABLE
        self._count = min(self._count + 1, TABLE)
        self._window(local_rx_us, offset)
        self._fit()
        if before is not None:  # synced: slew to the new fit instead of stepping
            self._slew_us = before - self._fitted(local_rx_us)
            self._slewed_at = local_rx_us
        return True

    def beacon_fields(self, local_now_us):
        """(root_id, root_seq, hops, global time now) for this bed's own beacon; the root
        advances its sequence with every beacon it sends."""
        if self.is_root:
            self.root_seq += 1
        return self.root_id, self.root_seq, self.hops, self._fitted(local_now_us)

    def period(self, local_now_us):
        """Once per beacon period: a root silent for too long is replaced by this bed."""
        if not self.is_root and local_now_us - self._heard_root_at > ROOT_SILENT_PERIODS * self.period_us:
            self._become_root(local_now_us)

    # ---- internals

    def _follow(self, root_id, local_us):
        continuity = self.global_us(local_us)
        self.root_id = root_id
        self.root_seq = 0
        self._restart()
        # Until the new root's points arrive, keep reporting what we reported.
        self._base_local, self._base_offset = local_us, continuity - local_us

    def _become_root(self, local_us):
        self._silent_root, self._silent_seq = self.root_id, self.root_seq
        now = self.global_us(local_us)
        self.root_id = self.bed_id
        self.hops = 0
        self._count = self._next = 0
        # The clock runs on from here at the rate it had (this bed's clock, corrected).
        self._base_local, self._base_offset = local_us, now - local_us
        self._slew_us = 0

    def _restart(self):
        self._count = self._next = 0
        self._skew_count = self._skew_next = 0
        self._skew_ppb = 0
        self._window_best = None
        self._rejected = 0
        self._slew_us = 0

    def _fitted_offset(self, local_us):
        return self._base_offset + (local_us - self._base_local) * self._skew_ppb // 1_000_000_000

    def _fitted(self, local_us):
        return local_us + self._fitted_offset(local_us)

    def _slew_at(self, local_us):
        owed = self._slew_us
        if not owed:
            return 0
        paid = (local_us - self._slewed_at) * SLEW_PPM // 1_000_000
        if paid >= abs(owed):
            self._slew_us = 0
            return 0
        return owed - paid if owed > 0 else owed + paid

    def _window(self, local_us, offset):
        """Keep the least-delayed point of each window of WINDOW_PERIODS beacon periods for
        the rate: minima are far steadier than single points."""
        best = self._window_best
        if best is None:
            self._window_start = local_us
        at_start = offset - (local_us - self._window_start) * self._skew_ppb // 1_000_000_000
        if best is None or at_start > best[2]:
            self._window_best = best = (local_us, offset, at_start)
        if local_us - self._window_start >= WINDOW_PERIODS * self.period_us:
            self._skew_local[self._skew_next] = best[0]
            self._skew_offset[self._skew_next] = best[1]
            self._skew_next = (self._skew_next + 1) % SKEW_TABLE
            self._skew_count = min(self._skew_count + 1, SKEW_TABLE)
            self._window_best = None
            if self._skew_count >= 2:
                self._skew_ppb = self._regression()

    def _fit(self):
        # The rate from the windows' minima; the offset through the least-delayed recent point.
        base_local = self._local[(self._next - 1) % TABLE]
        self._base_local = base_local
        self._base_offset = max(self._at_line(i, base_local, self._skew_ppb) for i in range(self._count))

    def _regression(self):
        """The slope (ppb) of offset over local time through the windows' minima."""
        points = range(self._skew_count)
        local, offset = self._skew_local, self._skew_offset
        ref_local, ref_offset = local[0], offset[0]  # differences keep the sums small
        count = self._skew_count
        mean_x = sum(local[i] - ref_local for i in points) // count
        mean_y = sum(offset[i] - ref_offset for i in points) // count
        sxx = sxy = 0
        for i in points:
            dx = local[i] - ref_local - mean_x
            sxx += dx * dx
            sxy += dx * (offset[i] - ref_offset - mean_y)
        if sxx < MIN_SPREAD_US * MIN_SPREAD_US:
            return self._skew_ppb
        return max(-MAX_SKEW_PPB, min(MAX_SKEW_PPB, sxy * 1_000_000_000 // sxx))

    def _at_line(self, i, base_local, skew_ppb):
        """Point i's offset brought to base_local along the slope."""
        return self._offset[i] - (self._local[i] - base_local) * skew_ppb // 1_000_000_000
