"""SB-1 hardware backend: the board interface of board.py on the ESP32-S3.

Every hardware object is built here from the pin numbers in board.py. Only this module
imports `machine`, `network` and `espnow`.
"""

import select
import sys
import time

import espnow
import machine
import network
from micropython import const

from board import (
    OUT_CHANNELS,
    OUT_DRIVE_RIGHT,
    OUT_STATUS_LED,
    PIN_ADC,
    PIN_DRIVE_HEAT,
    PIN_DRIVE_PWM,
    PIN_HAPTIC,
    PIN_STATUS_LED,
    PIN_WAKE_LIGHT,
    PWM_DRIVE_HZ,
    PWM_HAPTIC_HZ,
    PWM_LIGHT_HZ,
    WATCHDOG_TIMEOUT_MS,
)
from storage import FlashStorage
from wire_codec import (
    RESET_CAUSE_DEEP_SLEEP,
    RESET_CAUSE_HARD,
    RESET_CAUSE_POWER_ON,
    RESET_CAUSE_SOFT,
    RESET_CAUSE_UNKNOWN,
    RESET_CAUSE_WATCHDOG,
)

_PERMILLE = const(1000)
_DUTY_FULL = const(65535)
# LEDC latches a new duty at the end of the running period: wait two periods at duty 0
# before flipping an H-bridge direction so the old duty never drives the new direction.
_DEAD_US = 2 * 1_000_000 // PWM_DRIVE_HZ
_BROADCAST = b"\xff" * 6

# machine has no brownout constant on this port (the stubs list none), so brownout is
# reported as whatever the port maps it to, or unknown.
_RESET_CAUSES = (
    (machine.PWRON_RESET, RESET_CAUSE_POWER_ON),
    (machine.HARD_RESET, RESET_CAUSE_HARD),
    (machine.WDT_RESET, RESET_CAUSE_WATCHDOG),
    (machine.DEEPSLEEP_RESET, RESET_CAUSE_DEEP_SLEEP),
    (machine.SOFT_RESET, RESET_CAUSE_SOFT),
)


def _low_pin(number):
    # Drive the line low before anything else attaches to it.
    return machine.Pin(number, machine.Pin.OUT, value=0)


class Adc:
    """One ADC per ADC_* channel, full 0..3.3 V range."""

    def __init__(self):
        self._adc = [machine.ADC(machine.Pin(n), atten=machine.ADC.ATTN_11DB) for n in PIN_ADC]

    def read(self, channel):
        return self._adc[channel].read_u16()


class Outputs:
    """Thermal drives (PWM plus direction), haptic and wake light PWM, status LED."""

    def __init__(self):
        # Indexed by OUT_* channel: both drives, then haptic and wake light.
        self._pwm = [machine.PWM(_low_pin(n), freq=PWM_DRIVE_HZ, duty_u16=0) for n in PIN_DRIVE_PWM]
        self._pwm.append(machine.PWM(_low_pin(PIN_HAPTIC), freq=PWM_HAPTIC_HZ, duty_u16=0))
        self._pwm.append(machine.PWM(_low_pin(PIN_WAKE_LIGHT), freq=PWM_LIGHT_HZ, duty_u16=0))
        self._heat_pin = [_low_pin(n) for n in PIN_DRIVE_HEAT]
        self._heat = [0] * len(PIN_DRIVE_HEAT)
        self._led = _low_pin(PIN_STATUS_LED)

    def set(self, channel, permille):
        """Drives take -1000 (cool)..1000 (heat), the others 0..1000; out of range clamps."""
        if not 0 <= channel < OUT_CHANNELS:
            raise ValueError("output channel")
        if permille > _PERMILLE:
            permille = _PERMILLE
        elif permille < -_PERMILLE:
            permille = -_PERMILLE
        if channel == OUT_STATUS_LED:
            self._led.value(1 if permille > 0 else 0)
            return
        pwm = self._pwm[channel]
        if channel <= OUT_DRIVE_RIGHT:
            heat = self._heat[channel]
            if permille > 0:
                heat = 1
            elif permille < 0:
                heat = 0
                permille = -permille
            if heat != self._heat[channel]:
                # Never switch direction under drive (shoot-through).
                pwm.duty_u16(0)
                time.sleep_us(_DEAD_US)
                self._heat_pin[channel].value(heat)
                self._heat[channel] = heat
        elif permille < 0:
            permille = 0
        pwm.duty_u16(permille * _DUTY_FULL // _PERMILLE)

    def all_off(self):
        """Every output off; one failing output does not keep the others on."""
        for pwm in self._pwm:
            try:
                pwm.duty_u16(0)
            except (OSError, ValueError):
                pass
        try:
            self._led.value(0)
        except (OSError, ValueError):
            pass


class Watchdog:
    """machine.WDT, created only when armed."""

    def __init__(self):
        self._wdt = None
        self._holder = None

    def start(self, timeout_ms):
        # Once armed it cannot be stopped or reconfigured: a second start is a no-op.
        if self._wdt is None:
            self._wdt = machine.WDT(timeout=timeout_ms)

    def feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def hold(self):
        """Keep feeding from a hardware timer: the application has handed the console to the
        REPL (Ctrl-C or hand-back), and an armed ESP32 watchdog cannot be stopped."""
        if self._wdt is not None and self._holder is None:
            self._holder = machine.Timer(0)
            self._holder.init(period=WATCHDOG_TIMEOUT_MS // 4, mode=machine.Timer.PERIODIC, callback=self._hold_feed)

    def _hold_feed(self, timer):
        self.feed()


class Clock:
    """time.ticks_us and a sleep that yields to the radio and idle tasks."""

    def ticks_us(self):
        return time.ticks_us()

    def ticks_add(self, ticks, delta):
        return time.ticks_add(ticks, delta)

    def ticks_diff(self, end, start):
        return time.ticks_diff(end, start)

    def sleep_us(self, us):
        # sleep_us busy-waits on this port; sleep_ms blocks in FreeRTOS (and ends
        # with an accurate busy-wait), so whole milliseconds go there.
        if us >= 1000:
            time.sleep_ms(us // 1000)
            us %= 1000
        if us > 0:
            time.sleep_us(us)


class Radio:
    """ESP-NOW broadcast on the station interface, never connected to an access point."""

    def __init__(self):
        self.send_failures = 0
        self.recv_failures = 0
        self.recv_dropped = 0
        sta = network.WLAN(network.STA_IF)
        sta.active(True)
        sta.disconnect()
        self._now = espnow.ESPNow()
        self._now.active(True)
        try:
            self._now.add_peer(_BROADCAST)
        except OSError:
            pass  # already registered: ESPNow is a singleton that can outlive a soft reset

    def send(self, buf, length):
        """Broadcast buf[:length] without waiting for acknowledgement."""
        try:
            self._now.send(_BROADCAST, memoryview(buf)[:length], False)
        except OSError:
            self.send_failures += 1

    def recv_into(self, buf):
        """Copy one waiting message into buf and return its length; 0 if none."""
        try:
            # irecv reuses its own buffers; timeout 0 never blocks.
            _, msg = self._now.irecv(0)
        except OSError:
            self.recv_failures += 1
            return 0
        if msg is None:
            return 0
        n = len(msg)
        if n > len(buf):
            self.recv_dropped += 1
            return 0
        buf[:n] = msg
        return n


class Console:
    """USB serial, shared with the REPL; Ctrl-C keeps reaching it."""

    def __init__(self):
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._byte = bytearray(1)

    def _ready(self):
        # ipoll allocates nothing, unlike poll.
        for _, event in self._poll.ipoll(0):
            return event & select.POLLIN
        return 0

    def read_into(self, buf):
        """Read the bytes already waiting, at most len(buf); never blocks."""
        n = 0
        size = len(buf)
        # readinto blocks until its buffer is full, so read one ready byte at a time.
        while n < size and self._ready():
            if not self._in.readinto(self._byte):
                break
            buf[n] = self._byte[0]
            n += 1
        return n

    def write(self, buf, length):
        self._out.write(memoryview(buf)[:length])


class System:
    """Reset cause, reset and the chip's unique id."""

    def reset_cause(self):
        cause = machine.reset_cause()
        for raw, wire in _RESET_CAUSES:
            if raw == cause:
                return wire
        return RESET_CAUSE_UNKNOWN

    def reset(self):
        machine.reset()

    def unique_id(self):
        return machine.unique_id()


class Board:
    """The SB-1 board; every output is off when the constructor returns."""

    def __init__(self):
        # Outputs first, so the drives are held off as early in boot as possible.
        self.outputs = Outputs()
        self.adc = Adc()
        self.watchdog = Watchdog()
        self.clock = Clock()
        self.system = System()
        self.storage = FlashStorage("")
        self.console = Console()
        self.radio = Radio()
