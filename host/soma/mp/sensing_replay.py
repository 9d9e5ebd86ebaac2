"""Runs under MicroPython: the firmware's sensing pipeline over a file of raw BCG codes.

argv: SAMPLES ZERO GAIN_Q16. SAMPLES holds little-endian uint16 codes at 100 Hz. Prints
one JSON line per closed epoch ({"t_s": ..., "epoch": [EPOCH fields]}) and a last line
with the cost: {"samples": n, "us_per_sample": ... (sample and step, mean), "tick_max_us":
..., "sample_alloc_bytes": ..., "step_alloc_bytes": ..., "heap_used_bytes": ...}. The
sample path's allocation is measured on every sample (gc disabled around it); the
per-tick step's separately.
"""

import gc
import json
import sys
import time
from array import array

from sensing import Sensing

_CHUNK = 512


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
                if sensing.epoch[0] != closed:
                    closed = sensing.epoch[0]
                    print(json.dumps({"t_s": count / 100, "epoch": list(sensing.epoch)}))
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
            }
        )
    )


main()
