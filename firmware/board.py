"""SB-1 reference board: every pin and electrical constant, and the one place hardware is built.

Nothing else in the firmware names a pin or imports `machine`, `espnow` or `socket`: the
application gets a board object from `build()` and uses only the interface below, which
the `esp32` backend (hal_esp32.py), the `sim` backend (hal_sim.py, the MicroPython unix
port talking to the host simulator) and the test suite's scripted board all provide.

Board interface:
  adc.read(channel) -> int         raw 16-bit reading (read_u16 scale) of an ADC_* channel
  outputs.set(channel, permille)   OUT_* channel; drives are signed -1000 (cool)..+1000 (heat),
                                   the others 0..1000
  outputs.enable_heat(closed)      the heater enable relay in series with both H-bridges' supply
                                   (rev B): open at power-up; only the safety supervisor closes it
  outputs.all_off()                every output off and the relay open at once (safety path:
                                   must not raise)
  watchdog.start(timeout_ms)       arm the hardware watchdog (cannot be stopped once armed)
  watchdog.feed()
  watchdog.hold()                  keep it fed in the background: the REPL has the console
  clock.ticks_us() -> int          wrapping microsecond counter (time.ticks_us semantics)
  clock.ticks_add(t, delta), clock.ticks_diff(end, start)   wrap-safe arithmetic on those ticks
  clock.sleep_us(us)               idle until that many microseconds have passed
  radio.send(buf, length)          broadcast one radio frame (a beacon or a program chunk)
  radio.recv_into(buf) -> int      length of one received frame, 0 if none waiting
  radio.rx_ticks                   clock ticks at which that frame arrived
  radio.latency_us                 the least delay from send() to arrival (time sync adds it back)
  console.read_into(buf) -> int    bytes waiting on the USB serial line (never blocks)
  console.write(buf, length)
  storage                          a storage.FlashStorage rooted where records live
  system.reset_cause() -> int      a wire_codec RESET_CAUSE_* value
  system.reset()                   hard reset (does not return)
  system.unique_id() -> bytes
"""

from micropython import const

# ADC channels, in the order of the management protocol's raw readings.
ADC_PAD_LEFT = const(0)
ADC_PAD_RIGHT = const(1)
ADC_AMBIENT = const(2)
ADC_CURRENT_LEFT = const(3)
ADC_CURRENT_RIGHT = const(4)
ADC_BCG = const(5)
ADC_CHANNELS = const(6)

# Output channels: the wire protocol's OutputChannel values.
OUT_DRIVE_LEFT = const(0)
OUT_DRIVE_RIGHT = const(1)
OUT_HAPTIC = const(2)
OUT_WAKE_LIGHT = const(3)
OUT_STATUS_LED = const(4)
OUT_CHANNELS = const(5)

# ESP32-S3 GPIO numbers, indexed by the channel constants above.
PIN_ADC = (1, 2, 3, 4, 5, 6)
PIN_DRIVE_PWM = (10, 12)  # H-bridge PWM per zone
PIN_DRIVE_HEAT = (11, 13)  # H-bridge direction per zone: 1 heats, 0 cools
PIN_HEATER_ENABLE = 9  # relay driver: 1 closes the H-bridges' supply
PIN_HAPTIC = 14
PIN_WAKE_LIGHT = 15
PIN_STATUS_LED = 48
PWM_DRIVE_HZ = 20_000  # above hearing
PWM_HAPTIC_HZ = 200
PWM_LIGHT_HZ = 2_000

# Thermistors: NTC 10 kOhm at 25 degC, B 3950, from the ADC node to ground, 10 kOhm pull-up to 3.3 V.
NTC_R25_OHM = const(10_000)
NTC_B_KELVIN = const(3950)
NTC_PULLUP_OHM = const(10_000)
ADC_FULL_SCALE = const(65_535)

# Thermal drive: 120 W electrical at full drive per zone, from the 12 V supply.
DRIVE_FULL_POWER_W = const(120)
# Heater current sense: shunt amplifier on each H-bridge's heating leg, averaging over the PWM
# period, full ADC scale is 12 A (cooling current does not pass it). Full heat draws 10 A.
CURRENT_FULL_SCALE_MA = const(12_000)
DRIVE_FULL_CURRENT_MA = const(10_000)
# Bounds of a pad's heat balance, for the supervisor's stuck-heater rule: the most a
# sleeper's body gives a pad, its loss to the room, the least heat full cooling removes per
# watt drawn (a Peltier's COP falls with the temperature difference it works against).
BODY_HEAT_MAX_W = const(40)
PAD_LOSS_W_PER_K = const(4)
COOLING_COP_MIN_PERMILLE = const(300)

WATCHDOG_TIMEOUT_MS = const(2_000)

# Bed sensor (BCG) filters: three Q13 biquads, each (b0, b1, b2, a1, a2), designed and
# range-checked by host/soma/sensing_filters.py, which a test holds these to.
# fmt: off
BCG_FILTERS = (
    1910, 0, -1910, -11368, 4371,  # heartbeat band: bandpass 7 Hz, Q 0.7, at 100 Hz
    553, 1105, 553, -9363, 3381,  # its envelope: lowpass 2.5 Hz at 25 Hz
    300, 599, 300, -11394, 4400,  # breathing: lowpass 0.7 Hz at 10 Hz
)
# fmt: on


def build():
    """The board this firmware runs on: SB-1 hardware on an ESP32, the simulator elsewhere."""
    import sys

    if sys.platform == "esp32":
        import hal_esp32

        return hal_esp32.Board()
    import hal_sim

    return hal_sim.Board()
