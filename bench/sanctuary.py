"""Sanctuary benchmarks. So far: the firmware's time sync (firmware/timesync.py, unchanged)
in the discrete-event simulation (host/soma/sim/sync_des.py) on a virtual clock, with
+-50 ppm clocks, 20 % loss, 2 +- 1 ms radio delay and 5 % of timestamps up to 20 ms late.
Pairwise errors are exact (every bed's true clock is known), over every pair (a random
sample of pairs per instant for 1024 beds, plus the worst pair), after the first 40 % of
the run.

- sync.des_p50_us_N, sync.des_p99_us_N, sync.des_max_us_N, sync.des_converge_periods_N:
  N beds in one radio range (64, 256, 1024)
- sync.des_p99_us_line16, sync.des_p99_us_grid64, sync.des_p99_us_grid256: multi-hop,
  to show how the error grows with hops

The issue's 16-virtual-bed figures (sync.pairwise_*, ushering, power) come once the bed
application runs the sync (issue 6).
"""

from soma.sim.sync_des import SyncNetwork

from . import Result

SINGLE_HOP = ((64, 90, None), (256, 60, None), (1024, 30, 2_000))  # beds, seconds, sampled pairs
MULTI_HOP = (("line", 16, 180), ("grid", 64, 180), ("grid", 256, 120))


def _percentile(values, fraction):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * fraction))]


def run():
    for beds, seconds, pairs in SINGLE_HOP:
        net = SyncNetwork(beds=beds, seed=1, loss=0.2, late_chance=0.05)
        net.run(seconds, sample_every_us=500_000)
        errors = net.pairwise_errors_us(after_s=seconds * 0.4, pairs_per_sample=pairs)
        yield Result(f"sync.des_p50_us_{beds}", _percentile(errors, 0.5), "us")
        yield Result(f"sync.des_p99_us_{beds}", _percentile(errors, 0.99), "us")
        yield Result(f"sync.des_max_us_{beds}", max(errors), "us")
        yield Result(f"sync.des_converge_periods_{beds}", net.synced_after_periods(), "periods")
    for topology, beds, seconds in MULTI_HOP:
        net = SyncNetwork(beds=beds, seed=1, loss=0.2, late_chance=0.05, topology=topology)
        net.run(seconds, sample_every_us=500_000)
        errors = net.pairwise_errors_us(after_s=seconds * 0.4, pairs_per_sample=500)
        yield Result(f"sync.des_p99_us_{topology}{beds}", _percentile(errors, 0.99), "us")
