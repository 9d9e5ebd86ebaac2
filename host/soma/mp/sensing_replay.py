"""Runs under MicroPython: the firmware's sensing pipeline over a file of raw BCG codes.

argv: SAMPLES ZERO GAIN_Q16. SAMPLES holds little-endian uint16 codes at 100 Hz, read a
chunk at a time. An epoch closes a few ticks after its last sample (its rates take ticks to
compute): after the last sample the pipeline is stepped on until every whole epoch has
closed, as a unit's would be with more samples coming. Prints one JSON line per closed
epoch ({"t_s": ..., "epoch": [EPOCH fields]}) and a last line with the cost: {"samples":
n, "us_per_sample": ... (sample and step, mean), "tick_max_us": ..., "sample_alloc_bytes":
..., "step_alloc_bytes": ..., "heap_used_bytes": ..., "peak_rss_kib": ... (this process's
peak resident memory, from /proc)}. The sample path's allocation is measured on every
sample (gc disabled around it); the per-tick step's separately.
"""

import gc
import json
import sys
import time
from array import array

from micropython import const

from sensing import Sensing

_CHUNK = 512
_EPOCH_SAMPLES = const(3000)
_CLOSE_TICKS_MAX = const(1000)  # an epoch closes within this many ticks of its end


def _report(sensing, closed, count):
    """Print the epoch if one closed since `closed`; the epochs closed now."""
    if sensing.epoch[0] != closed:
        print(json.dumps({"t_s": count / 100, "epoch": list(sensing.epoch)}))
    return sensing.epoch[0]


def _peak_rss_kib():
    """This process's peak resident memory (VmHWM), 0 where /proc does not tell."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    path, zero, gain_q16 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sensing = Sensing()
    sensing.calibrate([0] * 12 + [zero, gain_q16])
    codes = array("H", bytes(2 * _CHUNK))
    count = closed = sample_alloc = step_alloc = busy_us = tick_max_us = 0
    gc.collect()
    with open(path, "rb") as f:
        while True:
            got = f.readinto(codes) // 2
            if not got:
                break
            for i in range(got):
                gc.disable()
                before = gc.mem_alloc()
                started = time.ticks_us()
                sensing.sample(codes[i])
                middle = gc.mem_alloc()
                sensing.step()
                took = time.ticks_diff(time.ticks_us(), started)
                step_alloc += gc.mem_alloc() - middle
                sample_alloc += middle - before
                gc.enable()
                busy_us += took
                if took > tick_max_us:
                    tick_max_us = took
                count += 1
                closed = _report(sensing, closed, count)
    for _ in range(_CLOSE_TICKS_MAX):
        if closed >= count // _EPOCH_SAMPLES:
            break
        sensing.step()
        closed = _report(sensing, closed, count)
    gc.collect()
    print(
        json.dumps(
            {
                "samples": count,
                "us_per_sample": busy_us / count if count else 0,
                "tick_max_us": tick_max_us,
                "sample_alloc_bytes": sample_alloc,
                "step_alloc_bytes": step_alloc,
                "heap_used_bytes": gc.mem_alloc(),
                "peak_rss_kib": _peak_rss_kib(),
            }
        )
    )


main()
