"""The virtual board's `machine`: the unix port's, plus what a board's has and tools call.

A virtual bed's ROM (soma.sim.virtual_bed puts this directory on MICROPYPATH after the
flash directory, outside it, so `mpremote fs ls` never lists it), as an ESP32's firmware
image holds its `machine`. The unix port's `machine` is an extensible builtin: this file
stands in for it and imports it whole as `umachine`.
"""

import sys

from umachine import *  # noqa: F403  # pyright: ignore[reportWildcardImportFromLibrary]  (the unix port's machine)

HARD_RESET_STATUS = 3  # soma.sim.virtual_bed restarts a process that exits with it as a hard reset


def reset():
    """Hard reset (`mpremote reset` calls it): the process ends and the virtual bed boots
    it again, main.py first. Works at the REPL, raw or friendly (not from a thread, nor
    inside `micropython -i main.py` before the REPL: the application resets through the
    simulator, hal_sim's system.reset)."""
    sys.exit(HARD_RESET_STATUS)
