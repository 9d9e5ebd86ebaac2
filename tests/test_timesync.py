"""The firmware's time sync (firmware/timesync.py), unchanged, in the discrete-event
simulation: convergence and the pairwise bars with drift, loss and late timestamps, root
failover, and the same module under MicroPython."""

import pytest

from mpexec import run_micropython
from soma.sim.sync_des import SyncNetwork

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core


def percentile(values, fraction):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * fraction))]


def test_sixteen_beds_converge_and_hold_the_pairwise_bars_with_drift_and_loss():
    net = SyncNetwork(beds=16, seed=3, loss=0.2, drift_ppm=50, late_chance=0.05)
    net.run(90)
    assert net.synced_after_periods() <= 10
    errors = net.pairwise_errors_us(after_s=40)
    assert percentile(errors, 0.5) <= 200
    assert percentile(errors, 0.99) <= 1_000
    assert max(errors) <= 2_000


def test_the_lowest_id_is_root_and_a_silent_root_is_replaced():
    net = SyncNetwork(beds=8, seed=5, loss=0.1)
    net.run(30)
    assert {bed.sync.root_id for bed in net.beds} == {1}
    before = [bed.sync.global_us(bed.local_us(net.now_us)) for bed in net.beds[1:]]
    net.kill(0)
    killed_at = net.now_us
    net.run(30)
    assert {bed.sync.root_id for bed in net.beds[1:]} == {2}
    # The sanctuary's clock ran on: no bed's estimate jumped back or far ahead.
    after = [bed.sync.global_us(bed.local_us(net.now_us)) for bed in net.beds[1:]]
    elapsed = net.now_us - killed_at
    assert all(abs((b - a) - elapsed) < 5_000 for a, b in zip(before, after, strict=True))
    errors = [
        error
        for true_us, estimates, _ in net.samples
        if true_us > killed_at + 10_000_000
        for error in _pairs(estimates)
    ]
    assert max(errors) <= 2_000  # resynced within 10 s of the root going silent


def _pairs(estimates):
    known = sorted(value for value in estimates if value is not None)
    return [b - a for i, a in enumerate(known) for b in known[i + 1 :]]


@pytest.mark.parametrize("late_us", [0, 30_000])
def test_late_timestamps_do_not_pull_the_clock(late_us):
    net = SyncNetwork(beds=4, seed=7, loss=0.0, late_chance=0.2 if late_us else 0.0, late_us=late_us or 1)
    net.run(60)
    assert max(net.pairwise_errors_us(after_s=30)) <= 2_000


def test_a_partition_syncs_each_side_and_the_sanctuary_heals_onto_the_lowest_root():
    net = SyncNetwork(beds=12, seed=11, loss=0.2)
    net.run(40)
    net.partition(range(0, 6), range(6, 12))
    net.run(30)
    sides = [{bed.sync.root_id for bed in net.beds[:6]}, {bed.sync.root_id for bed in net.beds[6:]}]
    assert sides == [{1}, {7}]  # each side kept a root: its lowest bed
    before = [bed.sync.global_us(bed.local_us(net.now_us)) for bed in net.beds]
    healed_at = net.now_us
    net.partition()
    net.run(30)
    assert {bed.sync.root_id for bed in net.beds} == {1}
    # The far side followed root 1 without stepping back or far ahead: the clock ran on.
    after = [bed.sync.global_us(bed.local_us(net.now_us)) for bed in net.beds]
    elapsed = net.now_us - healed_at
    assert all(abs((b - a) - elapsed) < 10_000 for a, b in zip(before, after, strict=True))
    errors = net.pairwise_errors_us(after_s=(healed_at + 15_000_000) / 1e6)
    assert max(errors) <= 2_000


def test_the_same_module_runs_under_micropython():
    # Two beds by hand: the root's beacons reach the follower 1.5 ms late, its clock runs
    # 40 ppm fast and 12.345 s ahead; after a minute the follower tells global time well.
    code = """
import json
from timesync import TimeSync
root, bed = TimeSync(1, 1_000_000, 1_000), TimeSync(2, 1_000_000, 1_000)
def local(t):
    return t + t * 40 // 1_000_000 + 12_345_000
errors = []
for second in range(1, 61):
    t = second * 1_000_000
    root.period(t)  # alone on air: it takes the root after listening
    fields = root.beacon_fields(t)
    bed.on_beacon(1, *fields, local(t + 1_500 + (second * 7919) % 500))
    if second > 30:
        errors.append(abs(bed.global_us(local(t + 500_000)) - (t + 500_000)))
print(json.dumps({"synced": bed.synced, "root": bed.root_id, "worst": max(errors)}))
"""
    result = run_micropython(code)
    assert result["synced"] and result["root"] == 1
    assert result["worst"] <= 1_000


def test_sampled_pairs_keep_the_worst_pair_and_the_distribution():
    net = SyncNetwork(beds=12, seed=9, loss=0.2)
    net.run(40)
    exact = net.pairwise_errors_us(after_s=20)
    sampled = net.pairwise_errors_us(after_s=20, pairs_per_sample=200)
    assert max(sampled) == max(exact)
    assert abs(percentile(sampled, 0.5) - percentile(exact, 0.5)) <= max(50, percentile(exact, 0.5) // 4)
