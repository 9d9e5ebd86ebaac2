"""The REPL keeper (board.REPL_IDLE_MS; watchdog.hold, board.hold_repl): while the REPL has
the console, feed an armed watchdog, and reset the unit into the application once nothing
has run at the REPL for that long, that is once the heap's allocation count has not moved
(an idle REPL allocates nothing; a typed line or a tool's exec does).

It holds only what the board gives it: builtin callables (a watchdog's feed, a reset) and
their arguments, never a board object, whose modules would stay in the heap with it (the
flasher drops every module to have the heap for its window). It runs from a hardware timer
where the board gives one (the callback runs in the interpreter's own task, where the
ESP32's watchdog must be fed), else from a thread (the unix port runs one while the REPL
waits for input).
"""

import gc
import time

from micropython import const

_PERIOD_MS = const(250)

# Module globals, updated in place: the keeper allocates nothing while it watches.
_idle_ms = 0
_feed = None  # the watchdog's feed, None if none is armed
_reset = None
_reset_args = ()
_timer = None  # the hardware timer it runs from, None on a thread
_holding = False
_thread_running = False
_seen = 0  # the allocation count last seen...
_quiet_ms = 0  # ...and for how long it has not moved


def hold(idle_ms, feed, reset, reset_args=(), timer=None):
    """Keep the REPL: call feed() (if not None) every period, and reset(*reset_args) once
    nothing has run for idle_ms; from `timer` (a machine.Timer) if given, else a thread."""
    global _idle_ms, _feed, _reset, _reset_args, _timer, _holding, _thread_running, _seen, _quiet_ms
    _idle_ms, _feed, _reset, _reset_args = idle_ms, feed, reset, reset_args
    _seen = gc.mem_alloc()
    _quiet_ms = 0
    _holding = True
    if timer is not None:
        if _timer is None:
            _timer = timer
            timer.init(period=_PERIOD_MS, mode=timer.PERIODIC, callback=_tick)
    elif not _thread_running:
        import _thread

        _thread_running = True
        _thread.start_new_thread(_run, ())


def release():
    """The application feeds the watchdog again: its hang must not go unnoticed."""
    global _holding, _timer
    _holding = False
    if _timer is not None:
        _timer.deinit()
        _timer = None


def _run():
    global _thread_running
    while _holding:
        _tick(None)
        time.sleep_ms(_PERIOD_MS)
    _thread_running = False


def _tick(timer):
    global _seen, _quiet_ms
    if _feed is not None:
        _feed()
    used = gc.mem_alloc()
    if used != _seen:
        _seen = used
        _quiet_ms = 0
        return
    _quiet_ms += _PERIOD_MS
    if _quiet_ms >= _idle_ms and _reset is not None:
        _reset(*_reset_args)
