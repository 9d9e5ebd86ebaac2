"""Power-up: pick the firmware slot to run, then run the bed application from it.

The flash holds two firmware slots (slot_a/, slot_b/) and boot.json, which says which
slot runs and whether it is confirmed. `soma flash` writes the idle slot, then switches
boot.json in one atomic rename to {"slot": new, "state": "trial", "tries": 0,
"previous": old}. A trial slot gets one boot: the application confirms it once its
self-checks pass; a trial slot that boots again unconfirmed (it crashed, hung and was
reset by the watchdog, or never confirmed) is abandoned for the previous one, as
MCUboot's test/confirm does. Without boot.json the firmware runs from the flash root
(a development install).
"""

import gc
import json
import os
import sys

BOOT_STATE = "boot.json"


def _write_state(state):
    with open(BOOT_STATE + ".tmp", "w") as f:
        json.dump(state, f)
    os.rename(BOOT_STATE + ".tmp", BOOT_STATE)  # atomic: the old state or the new, never a mix


def _choose():
    try:
        with open(BOOT_STATE) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None, None
    if state.get("state") == "trial":
        if state.get("tries", 0) >= 1 and state.get("previous"):
            state = {"slot": state["previous"], "state": "confirmed", "tries": 0, "rolled_back": state["slot"]}
        else:
            state["tries"] = state.get("tries", 0) + 1
        _write_state(state)
    return state, "slot_" + state["slot"]


class Boot:
    """What the application learns from the boot loader, and how it confirms a trial slot."""

    def __init__(self, state, slot):
        self.state = state
        self.slot = slot

    def firmware_hash(self):
        try:
            with open(self.slot + "/manifest.json") as f:
                return json.load(f)["firmware_hash"]
        except (OSError, ValueError, KeyError, TypeError):
            return ""

    def confirm(self):
        if self.state is not None and self.state.get("state") == "trial":
            self.state = {"slot": self.state["slot"], "state": "confirmed", "tries": 0}
            _write_state(self.state)


_state, _slot = _choose()
if _slot is not None:
    sys.path.insert(0, _slot)
gc.collect()  # this file's compile garbage, before the application takes the heap

import bed  # noqa: E402  (from the chosen slot)
import board  # noqa: E402

bed.main(board.build(), Boot(_state, _slot))
