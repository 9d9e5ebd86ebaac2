"""A scripted SB-1 for firmware tests under MicroPython: inputs from functions and tables,
outputs recorded, on a virtual clock (a night passes in seconds) or the real one.

It implements the board interface of firmware/board.py; tests/mp/pad_plant.py can drive
its ADC channels from a thermal model of the pad.
"""

import time
from array import array

from micropython import const

from board import ADC_CHANNELS, OUT_CHANNELS
from storage import FlashStorage

_PERIOD = const(1 << 30)  # (const: inlined, no global lookup in the clock's hot methods)
_HALF = const(1 << 29)


def _nothing(now_us):
    pass


class VirtualClock:
    """Microsecond ticks that move only when the firmware sleeps; `on_sleep(now_us)` runs each time."""

    def __init__(self, start_us=_PERIOD - 5_000_000):  # wraps 5 s in: wrap handling is always exercised
        self.now_us = 0  # unwrapped virtual time since the start
        self._start = start_us
        self.on_sleep = _nothing

    def ticks_us(self):
        return (self._start + self.now_us) % _PERIOD

    def ticks_add(self, ticks, delta):
        return (ticks + delta) % _PERIOD

    def ticks_diff(self, end, start):
        return (end - start + _HALF) % _PERIOD - _HALF

    def sleep_us(self, us):
        self.now_us += us
        self.on_sleep(self.now_us)

    def spend_us(self, us):
        """Virtual time a tick body takes (the clock does not move on its own)."""
        self.now_us += us


class RealClock:
    """time.ticks_us, for benchmarks; `on_sleep` runs before each sleep."""

    def __init__(self):
        self.on_sleep = _nothing

    def ticks_us(self):
        return time.ticks_us()

    def ticks_add(self, ticks, delta):
        return time.ticks_add(ticks, delta)

    def ticks_diff(self, end, start):
        return time.ticks_diff(end, start)

    def sleep_us(self, us):
        self.on_sleep(time.ticks_us())
        time.sleep_us(us)


class Adc:
    def __init__(self):
        self.codes = array("H", [30000] * ADC_CHANNELS)

    def read(self, channel):
        return self.codes[channel]


class Outputs:
    def __init__(self):
        self.levels = [0] * OUT_CHANNELS
        self.peak = [0] * OUT_CHANNELS  # largest |level| ever set, per channel
        self.all_off_calls = 0
        self.heat_enabled = False  # the heater enable relay

    def enable_heat(self, closed):
        self.heat_enabled = bool(closed)

    def set(self, channel, permille):
        self.levels[channel] = permille
        if abs(permille) > self.peak[channel]:
            self.peak[channel] = abs(permille)

    def all_off(self):
        self.all_off_calls += 1
        self.heat_enabled = False
        for channel in range(OUT_CHANNELS):
            self.set(channel, 0)


class Watchdog:
    def __init__(self, clock):
        self._clock = clock
        self._virtual = isinstance(clock, VirtualClock)  # (decided once: feed() runs every tick)
        self.timeout_ms = 0
        self.last_feed_us = -1
        self.held = False

    def start(self, timeout_ms):
        self.timeout_ms = timeout_ms
        self.held = False  # the application feeds it again

    def feed(self):
        self.last_feed_us = self._clock.now_us if self._virtual else 0

    def hold(self):
        self.held = True


class Radio:
    """Frames the test queues (with the clock's ticks at arrival, or now), and those sent."""

    latency_us = 1000

    def __init__(self, clock):
        self._clock = clock
        self.sent = []  # (virtual us, bytes)
        self.inbox = []  # bytes, or (rx ticks, bytes)
        self.rx_ticks = 0

    def send(self, buf, length):
        self.sent.append((getattr(self._clock, "now_us", 0), bytes(buf[:length])))

    def recv_into(self, buf):
        if not self.inbox:
            return 0
        data = self.inbox.pop(0)
        if isinstance(data, tuple):
            self.rx_ticks, data = data
        else:
            self.rx_ticks = self._clock.ticks_us()
        buf[: len(data)] = data
        return len(data)


class Console:
    """Bytes the test queues for the firmware, and everything the firmware wrote."""

    def __init__(self):
        self.incoming = bytearray()
        self.written = bytearray()

    def read_into(self, buf):
        if not self.incoming:  # (every tick: no slices made when nothing came)
            return 0
        count = min(len(buf), len(self.incoming))
        buf[:count] = self.incoming[:count]
        self.incoming = self.incoming[count:]
        return count

    def pending(self, timeout_ms):
        return len(self.incoming) > 0  # (what the test queued: nothing arrives while it waits)

    def write(self, buf, length):
        self.written.extend(buf[:length])


class Reset(Exception):
    """The firmware asked for a hard reset."""


class System:
    def __init__(self, cause=1):
        self.cause = cause

    def reset_cause(self):
        return self.cause

    def reset(self):
        raise Reset()

    def unique_id(self):
        return b"\x5c\x0a\x00\x01\x02\x03"


class ScriptedBoard:
    def __init__(self, root="", clock=None):
        self.clock = clock or VirtualClock()
        self.adc = Adc()
        self.outputs = Outputs()
        self.watchdog = Watchdog(self.clock)
        self.radio = Radio(self.clock)
        self.console = Console()
        self.storage = FlashStorage(root)
        self.system = System()

    def run(self, bed, seconds, every=None):
        """Run the bed's loop for `seconds` of clock time; `every(now_us)` runs in each sleep."""
        clock = self.clock
        end = getattr(clock, "now_us", 0) + int(seconds * 1_000_000)

        def on_sleep(now_us):
            if every is not None:
                every(now_us)
            if now_us >= end:
                bed.scheduler.running = False

        clock.on_sleep = on_sleep
        bed.scheduler.run(bed.tick)
