"""Simulated SB-1 for the MicroPython unix port: the host simulator's world model behind
the board interface (see board.py).

The simulator starts this process on a pseudo-terminal (the console) inside the bed's
flash directory and tells it, through environment variables, where the world model
listens and what this unit is like:
  SOMA_SIM_WORLD_PORT   UDP port of the world model on 127.0.0.1 (required)
  SOMA_SIM_SERIAL       unit serial (hex), SOMA_SIM_RESET_CAUSE  wire RESET_CAUSE_* value
  SOMA_SIM_DRIFT_PPB    clock rate error, SOMA_SIM_OFFSET_US  clock offset at start
Sensor codes arrive as sim_sensors datagrams, outputs and the watchdog leave as
sim_actuators, beacons travel as sim_radio (schema: "Simulator link"). A reset is the
process exiting with RESET_EXIT_STATUS; the simulator starts it again.
"""

import os
import select
import socket
import sys
import time
from array import array

from micropython import const

import wire_codec as wire
from board import ADC_CHANNELS, OUT_CHANNELS
from storage import FlashStorage

RESET_EXIT_STATUS = const(75)
_TICKS_PERIOD = const(1 << 30)  # as on the ESP32, so wrap handling is exercised
_TICKS_HALF = const(1 << 29)
_HEARTBEAT_US = const(100_000)  # actuators are re-sent at least this often
_RADIO_QUEUE = const(8)
_DATAGRAM_MAX = const(300)


def _env_int(name, default):
    text = os.getenv(name)
    return int(text) if text else default


class Clock:
    """The host's monotonic clock, with this unit's rate error and offset, wrapping at 2^30."""

    def __init__(self, drift_ppb, offset_us, idle):
        self._drift_ppb = drift_ppb
        self._offset = offset_us
        self._start = time.ticks_us()
        self._idle = idle

    def ticks_us(self):
        real = time.ticks_diff(time.ticks_us(), self._start)
        return (self._offset + real + real * self._drift_ppb // 1_000_000_000) % _TICKS_PERIOD

    def ticks_add(self, ticks, delta):
        return (ticks + delta) % _TICKS_PERIOD

    def ticks_diff(self, end, start):
        return (end - start + _TICKS_HALF) % _TICKS_PERIOD - _TICKS_HALF

    def sleep_us(self, us):
        self._idle(us)


class WorldLink:
    """UDP to the world model. One object plays four board parts (adc, outputs, watchdog,
    radio: their methods do not clash), which keeps the simulated board small in the heap,
    and it answers the world in the firmware's idle time."""

    def __init__(self, port, drift_ppb, offset_us):
        self._world = socket.getaddrinfo("127.0.0.1", port)[0][-1]
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(socket.getaddrinfo("127.0.0.1", 0)[0][-1])
        self._sock.setblocking(False)
        self._poll = select.poll()
        self._poll.register(self._sock, select.POLLIN)
        self.adc = array("H", bytes(2 * ADC_CHANNELS))
        self.outputs = [0] * OUT_CHANNELS
        self.dirty = True
        self.watchdog_timeout_ms = 0
        self.watchdog_feeds = 0
        self.watchdog_held = 0
        self._tx = bytearray(_DATAGRAM_MAX)
        self._seq = 0
        self._sent_at = time.ticks_us()
        self._radio = [bytearray(wire.BEACON_AIR_MAX) for _ in range(_RADIO_QUEUE)]
        self._radio_len = array("H", bytes(2 * _RADIO_QUEUE))
        self._radio_head = 0
        self._radio_count = 0
        self.radio_dropped = 0
        self.clock = Clock(drift_ppb, offset_us, self.idle)

    def idle(self, us):
        """Sleep `us` (bed time), answering the world meanwhile."""
        deadline = time.ticks_add(time.ticks_us(), us)
        self.send_actuators()
        while True:
            left = time.ticks_diff(deadline, time.ticks_us())
            if left <= 0:
                return
            if self._poll.poll(left // 1000):
                self._receive()
            elif left < 1000:
                time.sleep_us(left)

    def _receive(self):
        while True:
            try:
                data = self._sock.recv(_DATAGRAM_MAX)
            except OSError:  # EAGAIN: drained
                return
            if not data:
                return
            try:
                if data[0] == wire.SIM_KIND_SENSORS:
                    values = wire.unpack(wire.SIM_SENSORS, data)
                    for channel in range(ADC_CHANNELS):
                        self.adc[channel] = values[wire.SIM_SENSORS_IX_ADC_0 + channel]
                elif data[0] == wire.SIM_KIND_RADIO:
                    self._queue_radio(wire.unpack(wire.SIM_RADIO, data)[0])
            except wire.ProtocolError:
                pass  # not from a world model that speaks this schema

    def _queue_radio(self, payload):
        if self._radio_count == _RADIO_QUEUE or len(payload) > wire.BEACON_AIR_MAX:
            self.radio_dropped += 1
            return
        slot = (self._radio_head + self._radio_count) % _RADIO_QUEUE
        self._radio[slot][: len(payload)] = payload
        self._radio_len[slot] = len(payload)
        self._radio_count += 1

    # ---- adc
    def read(self, channel):
        return self.adc[channel]

    # ---- outputs
    def set(self, channel, permille):
        if self.outputs[channel] != permille:
            self.outputs[channel] = permille
            self.dirty = True

    def all_off(self):
        for channel in range(OUT_CHANNELS):
            self.outputs[channel] = 0
        self.send_actuators(force=True)

    # ---- watchdog (enforced by the simulator, which resets the process when feeds stop)
    def start(self, timeout_ms):
        if not self.watchdog_timeout_ms:
            self.watchdog_timeout_ms = timeout_ms
            self.dirty = True

    def feed(self):
        self.watchdog_feeds += 1

    def hold(self):
        self.watchdog_held = 1
        self.send_actuators(force=True)

    # ---- radio
    def send(self, buf, length):
        self._send(wire.SIM_RADIO, [memoryview(buf)[:length]])

    def recv_into(self, buf):
        if not self._radio_count:
            return 0
        slot = self._radio_head
        length = self._radio_len[slot]
        buf[:length] = self._radio[slot][:length]
        self._radio_head = (slot + 1) % _RADIO_QUEUE
        self._radio_count -= 1
        return length

    def send_actuators(self, force=False):
        now = time.ticks_us()
        if not (force or self.dirty or time.ticks_diff(now, self._sent_at) >= _HEARTBEAT_US):
            return
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        values = [self._seq] + self.outputs
        values += [self.watchdog_timeout_ms, self.watchdog_feeds & 0xFFFFFFFF, self.watchdog_held]
        values.append(self.clock.ticks_us())
        self._send(wire.SIM_ACTUATORS, values)
        self.dirty = False
        self._sent_at = now

    def _send(self, layout, values):
        size = wire.pack(layout, self._tx, 0, values)
        try:
            self._sock.sendto(memoryview(self._tx)[:size], self._world)
        except OSError:
            pass  # the world model is gone; the simulator restarts us when it returns


class Console:
    """The pseudo-terminal on stdin/stdout; reads never block."""

    def __init__(self):
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._byte = bytearray(1)
        self._stdin = sys.stdin.buffer
        self._stdout = sys.stdout.buffer

    def read_into(self, buf):
        count = 0
        while count < len(buf) and self._poll.poll(0):
            if not self._stdin.readinto(self._byte):
                break
            buf[count] = self._byte[0]
            count += 1
        return count

    def write(self, buf, length):
        self._stdout.write(memoryview(buf)[:length])


class System:
    def __init__(self, link):
        self._link = link
        self._serial = os.getenv("SOMA_SIM_SERIAL") or "0000000000000000"
        self._cause = _env_int("SOMA_SIM_RESET_CAUSE", wire.RESET_CAUSE_POWER_ON)

    def reset_cause(self):
        return self._cause

    def reset(self):
        self._link.send_actuators(force=True)
        sys.exit(RESET_EXIT_STATUS)

    def unique_id(self):
        from binascii import unhexlify

        return unhexlify(self._serial)


class Board:
    def __init__(self):
        port = _env_int("SOMA_SIM_WORLD_PORT", 0)
        if not port:
            raise OSError("SOMA_SIM_WORLD_PORT is not set: start virtual beds with `soma sim`")
        link = WorldLink(port, _env_int("SOMA_SIM_DRIFT_PPB", 0), _env_int("SOMA_SIM_OFFSET_US", 0))
        self.adc = self.outputs = self.watchdog = self.radio = link
        self.clock = link.clock
        self.console = Console()
        self.storage = FlashStorage("")
        self.system = System(link)
        self.link = link
