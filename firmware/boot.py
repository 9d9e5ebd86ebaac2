"""Every boot, first: hold the REPL (board.hold_repl, see board.REPL_IDLE_MS).

A board runs boot.py after every reset, and main.py after it only when the REPL is in
friendly mode: a soft reset from the raw REPL (`mpremote soft-reset`, the soft reset
mpremote does before its commands) runs this file alone. The REPL keeper started here
resets the unit into the application once the REPL has been idle; when main.py runs,
the application stops the keeper as it arms the watchdog (until then the keeper covers a
firmware that fails before it, whose trial slot the reset then rolls back).

The keeper comes from the slot main.py is about to run (boot.json, see main.py): its
board and boot.py's are one module. A trial slot that has had its boot is left alone:
main.py rolls it back, and which board then runs is its choice.
"""

import json
import sys


def _slot():
    """The slot directory main.py runs next ("" for the flash root), None if it decides."""
    try:
        with open("boot.json") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return ""  # no slots: a development install at the flash root
    if state.get("state") == "trial" and state.get("tries", 0):
        return None
    return "slot_" + state["slot"]


_held = _slot()
if _held is not None:
    if _held:
        sys.path.insert(0, _held)
    import board

    board.hold_repl()
    del board
    # The keeper holds only what it needs: every module goes, and the heap is the REPL's
    # (a flasher's window wants it whole); main.py imports what it runs afresh.
    for _name in list(sys.modules):
        if _name != "repl_keeper":
            del sys.modules[_name]
    del _name
del _slot, _held
