"""The bed application: builds every subsystem from a board object and runs the 100 Hz loop.

Tick phases (10 ticks = one 10 Hz reading):
  every tick   sample all ADC channels; serve the management link; feed the watchdog
  reading      safety supervisor (as soon as a 10 Hz reading is ready)
  phase 5      control: PID or bench override -> supervisor.request
  phase 7      telemetry, when streaming is on
  ~1 s         beacon slot, jittered per bed so beds never fall into lockstep
"""

import sys
from binascii import hexlify

from micropython import const

import records
import safety
import wire_codec as wire
from beacon_auth import BeaconVerifier, HmacSha256, pack_signed_beacon
from board import (
    ADC_CHANNELS,
    DRIVE_FULL_POWER_W,
    OUT_CHANNELS,
    OUT_DRIVE_LEFT,
    OUT_DRIVE_RIGHT,
    WATCHDOG_TIMEOUT_MS,
)
from config import Config
from console import ManagementLink, Refused
from control import ControlLaw, Pid, RelayAutotune, clamp
from scheduler import Scheduler
from sensors import Sensors
from thermistor import Thermistor, nominal_coefficients
from timebase import LocalTime

FIRMWARE_VERSION = b"0.1.0"
_CONTROL_PHASE = const(5)
_TELEMETRY_PHASE = const(7)
_BEACON_TICKS = const(100)
_BEACON_JITTER_TICKS = const(20)  # +-100 ms
_HEALTHY_TICKS = const(50)  # the watchdog is fed only while the supervisor ran this recently
_SELF_TEST_READINGS = const(3)
_IDLE_CURRENT_MA = const(500)  # more than this with the drive off: a heater stuck on
_PLAUSIBLE_LOW_MC = const(0)
_PLAUSIBLE_HIGH_MC = const(50_000)

# Self-test bits (the self_test response masks).
TEST_SENSOR_LEFT = const(0)
TEST_SENSOR_RIGHT = const(1)
TEST_SENSOR_AMBIENT = const(2)
TEST_PAD_PLAUSIBLE = const(3)
TEST_IDLE_CURRENT = const(4)
_ALL_TESTS = const(0x1F)

# info.record_flags bits
_CAL_MISSING = const(1)
_CAL_CORRUPT = const(2)
_CONFIG_CORRUPT = const(4)
_COMFORT_CORRUPT = const(8)
_KEY_MISSING = const(16)
_KEY_CORRUPT = const(32)


class Bed:
    def __init__(self, board):
        self.board = board
        self.store = records.RecordStore(board.storage)
        self.record_flags = 0
        self.local_time = LocalTime(board.clock)
        self.config = self._load_config()
        self._load_calibration()
        self._load_key()
        self.boot_epoch = self._next_boot_epoch()
        self.sensors = Sensors(
            board.adc, self.thermistors, self.config["adc_open_above"], self.config["adc_short_below"]
        )
        self.supervisor = safety.Supervisor(self.config, board.outputs, self._fault_event)
        self.laws: list[ControlLaw] = [Pid(*self.config.gains(0)), Pid(*self.config.gains(1))]
        self.targets_mc = [0, 0]  # 0: zone off
        self.outputs = [0] * OUT_CHANNELS  # last level per output channel, for telemetry
        self._override_level = [0] * OUT_CHANNELS
        self._override_until = [-1] * OUT_CHANNELS  # scheduler tick; -1: no override
        self.scheduler = Scheduler(board.clock)
        self.link = ManagementLink(board.console, self._handlers())
        self._booted = False
        self._staged_calibration = None
        self._telemetry_ticks = 0
        self._supervised_at = 0
        self._beacon_seq = 0
        self._next_beacon = _BEACON_TICKS
        self._radio_buf = bytearray(wire.BEACON_AIR_MAX)
        self._reboot_at = -1

    # ---- records ----------------------------------------------------------------

    def _load(self, kind, missing_flag, corrupt_flag):
        state, generation, values = self.store.load(kind)
        if state == records.MISSING:
            self.record_flags |= missing_flag
        elif state == records.CORRUPT:
            self.record_flags |= corrupt_flag
        return generation, values

    def _load_config(self):
        _, values = self._load(wire.RECORD_KIND_CONFIG, 0, _CONFIG_CORRUPT)
        if values is not None:
            try:
                return Config.from_values(values)
            except ValueError:
                self.record_flags |= _CONFIG_CORRUPT
        return Config()

    def _load_calibration(self):
        self.calibration_generation, values = self._load(wire.RECORD_KIND_CALIBRATION, _CAL_MISSING, _CAL_CORRUPT)
        self.calibration = values
        self.thermistors = None
        if values is not None:
            try:
                self.thermistors = _thermistors_from(values)
            except ValueError:
                self.record_flags |= _CAL_CORRUPT
                self.calibration = None
        if self.thermistors is None:
            nominal = Thermistor(*nominal_coefficients())
            self.thermistors = [nominal, nominal, nominal]

    def _load_key(self):
        _, values = self._load(wire.RECORD_KIND_KEY, _KEY_MISSING, _KEY_CORRUPT)
        self.sanctuary_id, self.bed_id, key = values if values is not None else (0, 0, None)
        self.mac = HmacSha256(key) if key is not None else None
        self.verifier = BeaconVerifier(key, self.sanctuary_id) if key is not None else None

    def _next_boot_epoch(self):
        # Part of the beacon replay counter: it must grow on every boot.
        storage = self.board.storage
        text = storage.read("epoch")
        try:
            epoch = (int(text) + 1) & 0xFFFF if text else 1
        except ValueError:
            epoch = 1
        storage.write_atomic("epoch", b"%d" % epoch)
        return epoch

    # ---- the loop ---------------------------------------------------------------

    def start(self):
        """Outputs off, watchdog armed, boot reported: then the loop may run."""
        self.board.outputs.all_off()
        self.board.watchdog.start(WATCHDOG_TIMEOUT_MS)
        self.link.event(wire.MESSAGE_ID_BOOT_EVENT, [self.board.system.reset_cause(), self.boot_epoch])

    def run(self):
        self.start()
        self.scheduler.run(self.tick)

    def tick(self, count):
        if self.sensors.sample():
            sensors = self.sensors
            self.supervisor.step(sensors.temps_mc, sensors.codes, sensors.window_faults, self.targets_mc)
            self._supervised_at = count
            if not self._booted and sensors.readings >= _SELF_TEST_READINGS:
                self._boot_checks()
        phase = count % 10
        if phase == _CONTROL_PHASE:
            self._control(count)
        elif phase == _TELEMETRY_PHASE and self._telemetry_ticks:
            if count % self._telemetry_ticks == _TELEMETRY_PHASE % self._telemetry_ticks:
                self.link.telemetry(self.telemetry_values())
        self.link.poll()
        if count >= self._next_beacon:
            self._beacon_slot(count)
        if count - self._supervised_at < _HEALTHY_TICKS:
            self.board.watchdog.feed()
        if self._reboot_at >= 0 and count >= self._reboot_at:
            self.board.outputs.all_off()
            self.board.system.reset()

    def _boot_checks(self):
        self._booted = True
        passed = self.self_test()
        if passed == _ALL_TESTS:
            self.supervisor.arm()
        else:
            self.supervisor.fail_self_test(_ALL_TESTS & ~passed)

    def self_test(self):
        """Run the self-checks on the latest reading; return the passed mask."""
        sensors = self.sensors
        passed = 0
        for sensor in range(3):
            if not sensors.window_faults & (1 << sensor):
                passed |= 1 << (TEST_SENSOR_LEFT + sensor)
        pads = sensors.temps_mc
        if _PLAUSIBLE_LOW_MC < pads[0] < _PLAUSIBLE_HIGH_MC and _PLAUSIBLE_LOW_MC < pads[1] < _PLAUSIBLE_HIGH_MC:
            passed |= 1 << TEST_PAD_PLAUSIBLE
        idle = self.supervisor.applied[0] == 0 and self.supervisor.applied[1] == 0
        if not idle or max(sensors.currents_ma[0], sensors.currents_ma[1]) < _IDLE_CURRENT_MA:
            passed |= 1 << TEST_IDLE_CURRENT
        return passed

    def _control(self, count):
        config = self.config
        for zone in range(2):
            channel = OUT_DRIVE_LEFT + zone
            if self._override_until[channel] >= count:
                drive = self._override_level[channel]
            elif self.targets_mc[zone]:
                target = clamp(self.targets_mc[zone], config["setpoint_min_mc"], config["setpoint_max_mc"])
                drive = self.laws[zone].update(target, self.sensors.temps_mc[zone])
                if self.laws[zone].done:
                    self._autotune_done(zone)
            else:
                drive = 0
                self.laws[zone].reset(self.sensors.temps_mc[zone])
            self.supervisor.request(zone, drive)
        applied = self.supervisor.applied
        self.outputs[OUT_DRIVE_LEFT] = applied[0]
        self.outputs[OUT_DRIVE_RIGHT] = applied[1]
        for channel in range(OUT_DRIVE_RIGHT + 1, OUT_CHANNELS):
            if 0 <= self._override_until[channel] < count:  # an override ran out
                self._override_until[channel] = -1
                self._set_output(channel, 0)

    def _set_output(self, channel, level):
        self.outputs[channel] = level
        self.board.outputs.set(channel, level)

    def _beacon_slot(self, count):
        self._next_beacon = count + _BEACON_TICKS + self._jitter()
        buf = self._radio_buf
        while True:  # take every beacon that arrived
            length = self.board.radio.recv_into(buf)
            if not length:
                break
            if self.verifier is not None:
                self.verifier.check(buf, length)
        if self.mac is None:
            return  # not provisioned: silent on air
        self._beacon_seq += 1
        demand = (abs(self.supervisor.requested[0]) + abs(self.supervisor.requested[1])) * DRIVE_FULL_POWER_W // 1000
        now = self.local_time.now_us()
        values = [
            self.sanctuary_id,
            self.bed_id,
            self.boot_epoch,
            self._beacon_seq,
            wire.BEACON_FLAGS_FAULT if self.supervisor.latched else 0,
            self.bed_id,
            self._beacon_seq,
            now,
            0,
            0,
            0,
            wire.OCCUPANCY_UNKNOWN,
            wire.WAKE_READINESS_UNKNOWN,
            demand,
            demand,
            0,
            0,
            b"",
        ]
        self.board.radio.send(buf, pack_signed_beacon(self.mac, buf, values))

    def _jitter(self):
        # Deterministic per bed and beacon, different between beds.
        mixed = (self.bed_id * 2654435761 + self._beacon_seq * 40503) & 0xFFFF
        return mixed % (2 * _BEACON_JITTER_TICKS + 1) - _BEACON_JITTER_TICKS

    def _fault_event(self, code, active, value):
        self.link.event(
            wire.MESSAGE_ID_FAULT_EVENT, [code, active, clamp(value, -(1 << 31), (1 << 31) - 1), self.uptime_ms()]
        )

    def uptime_ms(self):
        return (self.scheduler.ticks * (self.scheduler.period_us // 1000)) & 0xFFFFFFFF

    def telemetry_values(self):
        sensors = self.sensors
        temps = sensors.temps_mc
        return (
            [
                self.uptime_ms(),
                temps[0],
                temps[1],
                temps[2],
                self.targets_mc[0],
                self.targets_mc[1],
                self.supervisor.applied[0],
                self.supervisor.applied[1],
                sensors.currents_ma[0],
                sensors.currents_ma[1],
            ]
            + self.outputs
            + [
                self.supervisor.latched,
                self.scheduler.overruns & 0xFFFFFFFF,
                self.scheduler.heap_used,
                0,
                self.local_time.now_us(),
            ]
        )

    # ---- management requests ------------------------------------------------------

    def _handlers(self):
        return {
            wire.MESSAGE_ID_PING: lambda request: request,
            wire.MESSAGE_ID_INFO: self._info,
            wire.MESSAGE_ID_READ_SENSORS: self._read_sensors,
            wire.MESSAGE_ID_CALIBRATION_READ: self._calibration_read,
            wire.MESSAGE_ID_CALIBRATION_WRITE: self._calibration_write,
            wire.MESSAGE_ID_CALIBRATION_COMMIT: self._calibration_commit,
            wire.MESSAGE_ID_CONFIG_READ: lambda request: self.config.values(),
            wire.MESSAGE_ID_CONFIG_WRITE: self._config_write,
            wire.MESSAGE_ID_BENCH_OVERRIDE: self._bench_override,
            wire.MESSAGE_ID_SELF_TEST: self._self_test,
            wire.MESSAGE_ID_FAULT_CLEAR: self._fault_clear,
            wire.MESSAGE_ID_PROVISION_KEY: self._provision_key,
            wire.MESSAGE_ID_TELEMETRY_CONTROL: self._telemetry_control,
            wire.MESSAGE_ID_REBOOT: self._reboot,
            wire.MESSAGE_ID_REPL_HANDBACK: self._repl_handback,
            wire.MESSAGE_ID_SET_TARGETS: self._set_targets,
            wire.MESSAGE_ID_AUTOTUNE: self._autotune,
        }

    def _info(self, request):
        self.supervisor.refresh()
        return [
            FIRMWARE_VERSION,
            _firmware_hash(self.board.storage),
            wire.PROTOCOL_HASH,
            hexlify(self.board.system.unique_id()),
            self.board.system.reset_cause(),
            self.uptime_ms(),
            self._calibration_state(),
            self.record_flags,
            self.supervisor.latched,
            self.sanctuary_id,
            self.bed_id,
            getattr(sys.implementation, "_mpy", 0) & 0xFFFF,
        ]

    def _calibration_state(self):
        if self._staged_calibration is not None:
            return wire.CALIBRATION_STATE_STAGED
        if self.calibration is not None:
            return wire.CALIBRATION_STATE_CALIBRATED
        if self.record_flags & _CAL_CORRUPT:
            return wire.CALIBRATION_STATE_CORRUPT
        return wire.CALIBRATION_STATE_NOMINAL

    def _read_sensors(self, request):
        sensors = self.sensors
        return list(sensors.raw[:ADC_CHANNELS]) + list(sensors.temps_mc) + list(sensors.currents_ma)

    def _calibration_read(self, request):
        values = self.calibration
        if values is None:
            a, b, c = nominal_coefficients()
            values = [a, b, c, 0] * 3 + [0, 1 << 16, 0, b""]
        return [self._calibration_state(), self.calibration_generation] + list(values)

    def _calibration_write(self, request):
        _thermistors_from(request)  # refuses coefficients that give no sane curve (ValueError)
        self._staged_calibration = request
        return []

    def _calibration_commit(self, request):
        staged = self._staged_calibration
        if staged is None:
            raise Refused(1)
        generation = self.store.save(wire.RECORD_KIND_CALIBRATION, staged)
        self._staged_calibration = None
        self.calibration = staged
        self.calibration_generation = generation
        self.record_flags &= ~(_CAL_MISSING | _CAL_CORRUPT)
        self.thermistors = _thermistors_from(staged)
        self.sensors.thermistors = self.thermistors
        return [generation]

    def _config_write(self, request):
        config = Config.from_values(request)  # ValueError -> bad_payload
        generation = self.store.save(wire.RECORD_KIND_CONFIG, config.values())
        # Gains apply now; limits on the next boot, when the supervisor is built with them.
        self.laws = [Pid(*config.gains(0)), Pid(*config.gains(1))]
        return [generation]

    def _bench_override(self, request):
        channel, level, duration_ms = request
        if not 0 <= channel < OUT_CHANNELS:
            raise ValueError("no such output")
        low = -1000 if channel <= OUT_DRIVE_RIGHT else 0
        if not low <= level <= 1000:
            raise ValueError("level out of range")
        self.supervisor.refresh()
        if duration_ms == 0:
            self._override_until[channel] = -1
            level = 0
        else:
            self._override_level[channel] = level
            self._override_until[channel] = self.scheduler.ticks + (duration_ms + 9) // 10
        if channel > OUT_DRIVE_RIGHT:
            self._set_output(channel, level)  # drives go through the supervisor at the next control step
        return []

    def _self_test(self, request):
        passed = self.self_test()
        return [passed, _ALL_TESTS & ~passed]

    def _fault_clear(self, request):
        self.supervisor.refresh()
        cleared, remaining = self.supervisor.clear(request[0])
        if cleared:
            for zone in range(2):
                self.laws[zone].reset(self.sensors.temps_mc[zone])
        return [cleared, remaining]

    def _provision_key(self, request):
        import hashlib

        sanctuary_id, bed_id, key = request
        self.store.save(wire.RECORD_KIND_KEY, request)
        self.record_flags &= ~(_KEY_MISSING | _KEY_CORRUPT)
        self.sanctuary_id = sanctuary_id
        self.bed_id = bed_id
        self.mac = HmacSha256(key)
        self.verifier = BeaconVerifier(key, sanctuary_id)
        return [hashlib.sha256(key).digest()[:4]]

    def _telemetry_control(self, request):
        period_ms = request[0]
        self._telemetry_ticks = 0 if period_ms == 0 else max(10, (period_ms + 9) // 10 // 10 * 10)
        return []

    def _reboot(self, request):
        self._reboot_at = self.scheduler.ticks + 1 + request[0] // 10
        return []

    def _repl_handback(self, request):
        self.scheduler.stop()  # the loop ends after this tick; main() turns outputs off
        return []

    def _autotune(self, request):
        zone, target, amplitude = request
        config = self.config
        if (
            zone > 1
            or not config["setpoint_min_mc"] <= target <= config["setpoint_max_mc"]
            or not 0 < amplitude <= 1000
        ):
            raise ValueError("autotune needs zone 0 or 1, a target in the set point range and 1..1000 permille")
        if not self.supervisor.armed or self.supervisor.latched:
            raise Refused(self.supervisor.latched & 0xFFFF)
        self.supervisor.refresh()
        self.laws[zone] = RelayAutotune(amplitude)
        self.laws[zone].reset(self.sensors.temps_mc[zone])
        self.targets_mc[zone] = target
        self.link.event(wire.MESSAGE_ID_AUTOTUNE_EVENT, [zone, wire.AUTOTUNE_STATE_RUNNING, 0, 0, 0, 0])
        return []

    def _autotune_done(self, zone):
        law = self.laws[zone]
        assert isinstance(law, RelayAutotune)
        gains = law.gains()
        prefix = "zone_left." if zone == 0 else "zone_right."
        self.config = self.config.changed(
            {prefix + "kp_q16": gains[0], prefix + "ki_q16": gains[1], prefix + "kd_q16": gains[2]}
        )
        self.store.save(wire.RECORD_KIND_CONFIG, self.config.values())
        self.laws[zone] = Pid(*gains)
        self.laws[zone].reset(self.sensors.temps_mc[zone])
        self.link.event(
            wire.MESSAGE_ID_AUTOTUNE_EVENT, [zone, wire.AUTOTUNE_STATE_DONE, RelayAutotune.PEAKS] + list(gains)
        )

    def _set_targets(self, request):
        config = self.config
        for zone in range(2):
            target = request[zone]
            if target and not config["setpoint_min_mc"] <= target <= config["setpoint_max_mc"]:
                raise Refused(zone + 1)
        self.supervisor.refresh()
        self.targets_mc[0], self.targets_mc[1] = request[0], request[1]
        return []


def _thermistors_from(calibration):
    """Three Thermistors from CalibrationData values (ValueError if a curve is nonsense)."""
    return [Thermistor(*calibration[4 * sensor : 4 * sensor + 3]) for sensor in range(3)]


def _firmware_hash(storage):
    """The installed firmware's hash, from the manifest the flasher writes (zeros if none)."""
    text = storage.read(".fwhash")
    try:
        from binascii import unhexlify

        value = unhexlify(text.strip()) if text else b""
    except ValueError:
        value = b""
    return value[:8] if len(value) >= 8 else bytes(8)


def main(board):
    """Entry point: every output off first, on the way in and on every way out."""
    board.outputs.all_off()
    try:
        Bed(board).run()
    except KeyboardInterrupt:
        pass  # Ctrl-C: the operator wants the REPL
    finally:
        board.outputs.all_off()
    board.watchdog.hold()  # keep the REPL alive for flashing
