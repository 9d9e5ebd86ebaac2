"""Sanctuary benchmarks.

Sixteen virtual beds (the real firmware under MicroPython, 96 KiB heaps), +-50 ppm clocks,
20 % radio loss, 2 +- 1 ms radio delay; errors are exact (host/soma/sim/sanctuary_watch.py:
each bed's global time against its own clock, which the world knows):
- sync.pairwise_p50_us, sync.pairwise_p99_us, sync.pairwise_max_us: every pair of beds
  every 100 ms, from 30 s after they joined until the root is taken away
- sync.converge_periods: beacon periods (1 s) from the beds' restart into the sanctuary
  until all of them are synced on one root within 2 ms of each other, and stay so 5 s
- sync.failover_s: the root cut off by radio: seconds until the others agree again (the
  same way)
- ushering.spread_ms: the spread of the 16 beds' ushering onsets (their haptic motors
  switching on, as the world sees their actuators)
- power.max_budget_ratio: the most the 16 beds' pads drew together, over the program's
  Equal Rest budget (tight: 16 beds heating want four times it)
- firmware.sanctuary_heap_used_bytes: the most heap any bed reported in use (after its
  idle-time collections) with the sanctuary and the program running, of its 96 KiB
- safety.breaches: what the beds' safety oracles saw over the whole run (bar 0; bench.record adds it)

And the firmware's time sync (firmware/timesync.py, unchanged) in the discrete-event
simulation (host/soma/sim/sync_des.py) on a virtual clock, with +-50 ppm clocks, 20 % loss,
2 +- 1 ms radio delay and 5 % of timestamps up to 20 ms late. Pairwise errors are exact
(every bed's true clock is known), over every pair (a random sample of pairs per instant
for 1024 beds, plus the worst pair), after the first 40 % of the run.

- sync.des_p50_us_N, sync.des_p99_us_N, sync.des_max_us_N, sync.des_converge_periods_N:
  N beds in one radio range (64, 256, 1024)
- sync.des_p99_us_line16, sync.des_p99_us_grid64, sync.des_p99_us_grid256: multi-hop,
  to show how the error grows with hops
"""

import time
from collections.abc import Iterable, Iterator

from soma.sanctuary import program as programs
from soma.sanctuary import program_wire
from soma.sim.radio import RadioSettings
from soma.sim.sanctuary import Sanctuary
from soma.sim.sanctuary_watch import SanctuaryWatch
from soma.sim.sync_des import SyncNetwork

from . import Result

SINGLE_HOP = ((64, 90, None), (256, 60, None), (1024, 30, 2_000))  # beds, seconds, sampled pairs
MULTI_HOP = (("line", 16, 180), ("grid", 64, 180), ("grid", 256, 120))


def _percentile(values: Iterable[float], fraction: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * fraction))]


BEDS = 16
KEY = bytes(range(32))
BUDGET_W = 960  # a quarter of what 16 beds heating at full drive would draw
# Heating on every bed from the start; the ushering (haptic pulses) 60 s into the program.
PROGRAM = {
    "id": 1,
    "duration": "10m",
    "budget_w": BUDGET_W,
    "beds": BEDS,
    "phase": [{"at": "0s", "pad": 36}],
    "ushering": {"at": "60s", "ramp": "20s", "light": 100, "haptic": "pulse"},
}


def run() -> Iterator[Result]:
    yield from _virtual_sanctuary()
    yield from _simulated_sync()


def _virtual_sanctuary() -> Iterator[Result]:
    with Sanctuary(beds=BEDS, seed=1, flashed=True, radio=RadioSettings(loss=0.2), sleepers=False) as sanctuary:
        time.sleep(2)
        with SanctuaryWatch(sanctuary, KEY) as watch:
            joined = watch.provision()
            watch.start()
            time.sleep(10)
            status = watch.request_fields(5, "sanctuary_status", [0])
            start_us = status["global_time_us"] + 5_000_000
            values = program_wire.compile_program(programs.from_data(PROGRAM), 1, start_us)
            watch.request(5, "program_upload", values)  # a bed that is not the root: it spreads
            program_start = time.monotonic() + 5
            time.sleep(5 + 60 + 10)
            cut = time.monotonic()
            errors = sorted(watch.pairwise_errors_us(joined + 30, cut - 1))
            sanctuary.world.radio.partition([0], range(1, BEDS))  # the root (bed 1) cut off
            time.sleep(20)
            end = time.monotonic()
            onsets = [at for at in watch.onsets(program_start + 30) if at is not None]
            converge = watch.settled_after(joined, range(1, BEDS + 1), cut - 1)
            failover = watch.settled_after(cut, range(2, BEDS + 1), end - 1)
            drawn = max(watts for at, watts in list(sanctuary.world.drive_w) if program_start + 2 < at < cut)
            heap = max(track.heap_used_max for track in watch.tracks)
    if len(onsets) < BEDS:
        raise RuntimeError(f"only {len(onsets)} of {BEDS} beds ushered")
    yield Result("sync.pairwise_p50_us", round(_percentile(errors, 0.5)), "us")
    yield Result("sync.pairwise_p99_us", round(_percentile(errors, 0.99)), "us")
    yield Result("sync.pairwise_max_us", round(errors[-1]), "us")
    if converge is None or failover is None:
        raise RuntimeError(f"the beds did not settle (after joining: {converge}, after the root's loss: {failover})")
    yield Result("sync.converge_periods", round(converge, 1), "periods")
    yield Result("sync.failover_s", round(failover, 1), "s")
    yield Result("ushering.spread_ms", round((max(onsets) - min(onsets)) * 1000, 2), "ms")
    yield Result("power.max_budget_ratio", round(drawn / BUDGET_W, 3), "ratio")
    yield Result("firmware.sanctuary_heap_used_bytes", heap, "bytes")


def _simulated_sync() -> Iterator[Result]:
    for beds, seconds, pairs in SINGLE_HOP:
        net = SyncNetwork(beds=beds, seed=1, loss=0.2, late_chance=0.05)
        net.run(seconds, sample_every_us=500_000)
        errors = net.pairwise_errors_us(after_s=seconds * 0.4, pairs_per_sample=pairs)
        yield Result(f"sync.des_p50_us_{beds}", _percentile(errors, 0.5), "us")
        yield Result(f"sync.des_p99_us_{beds}", _percentile(errors, 0.99), "us")
        yield Result(f"sync.des_max_us_{beds}", max(errors), "us")
        converged = net.synced_after_periods()
        if converged is None:
            raise RuntimeError(f"the {beds} simulated beds never all synced on one root")
        yield Result(f"sync.des_converge_periods_{beds}", converged, "periods")
    for topology, beds, seconds in MULTI_HOP:
        net = SyncNetwork(beds=beds, seed=1, loss=0.2, late_chance=0.05, topology=topology)
        net.run(seconds, sample_every_us=500_000)
        errors = net.pairwise_errors_us(after_s=seconds * 0.4, pairs_per_sample=500)
        yield Result(f"sync.des_p99_us_{topology}{beds}", _percentile(errors, 0.99), "us")
