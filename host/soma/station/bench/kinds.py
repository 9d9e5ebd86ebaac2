"""The bench's measuring kinds (the `kind` of a plan's step): what each measures on the unit,
with which parameters, and the station it measures with (the unit's management client, the
fixture, the sanctuary key)."""

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from soma.errors import SomaError
from soma.link.management import FAULT_CODES, DeviceError, ManagementClient, ManagementTimeout
from soma_protocol import auth, codec, enums, ir

if TYPE_CHECKING:
    from soma.station.bench.report import BenchReport

# A parameter check: None if the value is good, else what is wrong with it ("must be ...").
Check = Callable[[object], str | None]
# Values read from the unit (info, sensors) and a step's parameters (TOML) are `Any`.

SENSORS = ("pad_left", "pad_right", "ambient")
ZONES = ("left", "right")
CHANNELS = {channel.name: int(channel) for channel in enums.OutputChannel}
RESET_CAUSES = {int(cause): cause.name for cause in enums.ResetCause}
BOOT_CONFIRMED = int(enums.BootState.confirmed)
BOOT_DEVELOPMENT = int(enums.BootState.development)
KEY_MISSING = int(enums.RecordFlags.key_missing)  # InfoResponse record_flags
# The bench's public test key: anyone can sign beacons with it. Only with --test-key, on a
# unit that has no key yet, so that its radio can be tested before it is provisioned; the
# unit keeps it (a key record cannot be taken back) until `soma provision` replaces it.
BENCH_KEY = hashlib.sha256(b"soma bench reference key").digest()
BENCH_SANCTUARY_ID = 0xBE0C
BENCH_BED_ID = 1
# What a unit's key is, as the report says it on arrival and on leaving.
KEY_NONE, KEY_SANCTUARY, KEY_BENCH = "none", "sanctuary key", "bench test key"
REFERENCE_BED_ID = 0xFFFE  # the fixture's reference radio, as a sender
ARMING_S = 2.0  # a rebooted unit passes its boot self-checks within this long


def _one_of(choices: Sequence[str]) -> Check:
    return lambda value: None if value in choices else f"must be one of {', '.join(choices)}"


def _number(low: float, high: float) -> Check:
    def check(value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            return f"must be a number in {low:g}..{high:g}"
        return None

    return check


class Fixture(Protocol):
    """The fixture instrument as a step uses it: a calibration.Bath, or anything that answers
    a command with text."""

    def ask(self, command: str) -> str: ...


class Station:
    """What a step measures with: the unit's management client, the fixture (an object with
    ask(command) -> text, or None) and, for the radio, the operator's word on keys: the
    sanctuary key of a provisioned unit (bytes, or None), or `test_key`: an unprovisioned
    unit may be given the public BENCH_KEY (which it keeps until `soma provision`)."""

    report: "BenchReport"  # the run's report: run_plan sets it before the first step

    def __init__(
        self, client: ManagementClient, fixture: Fixture | None = None, key: bytes | None = None, test_key: bool = False
    ) -> None:
        self.client = client
        self.fixture = fixture
        self.key = key
        self.test_key = test_key
        self.expected_resets = 0
        self.boot_events_before = 0  # boot events already in when the plan started

    def info(self, timeout: float = 3.0) -> dict[str, Any]:
        return self.client.request_fields("info", timeout=timeout)

    def sensors(self) -> dict[str, Any]:
        return self.client.request_fields("read_sensors", timeout=3.0)

    def override(self, channel: str, level: float, duration_ms: int) -> None:
        self.client.request("bench_override", [CHANNELS[channel], level, duration_ms], timeout=3.0)

    def need_fixture(self) -> Fixture:
        if self.fixture is None:
            raise SomaError("this step needs the fixture (--fixture PORT)")
        return self.fixture

    def fixture_value(self, command: str) -> float:
        return float(self.need_fixture().ask(command))

    def radio_key(self, info: dict[str, Any]) -> tuple[bytes, int]:
        """The key and sanctuary id the radio step signs with, as the operator said (`info`:
        the unit's info fields): SomaError with why and what to give if it cannot be tested.
        The bench never puts a key into a unit unasked, nor replaces one."""
        if not info["record_flags"] & KEY_MISSING:
            if self.test_key:
                raise SomaError(
                    "the unit holds a sanctuary key: the public test key (--test-key) is only for a unit "
                    "not provisioned yet: give the unit's key file (--key FILE) to test its radio"
                )
            if self.key is None:
                raise SomaError("the unit holds a sanctuary key: give its key file (--key FILE) to test the radio")
            return self.key, info["sanctuary_id"]
        if self.key is not None:
            raise SomaError(
                "the unit is not provisioned, so it cannot hold the key given (--key): provision it first "
                "(`soma provision --key FILE --sanctuary ID --bed N`), or test its radio with the public test key "
                "instead (--test-key: the unit keeps that key until `soma provision`)"
            )
        if not self.test_key:
            raise SomaError(
                "the unit is not provisioned: its radio needs a key: provision it first "
                "(`soma provision --key FILE --sanctuary ID --bed N`, then --key FILE here), or test it with "
                "the public test key (--test-key: the unit keeps that key until `soma provision`), "
                "or leave the radio step out (--only)"
            )
        return BENCH_KEY, BENCH_SANCTUARY_ID

    def boot_events(self) -> list[list[Any]]:
        self.client.poll(0.05)
        return [values for name, values in self.client.events if name == "boot_event"]


def key_state(info: dict[str, Any]) -> str:
    """What key a unit holds (`info`: its info fields), in the report's words."""
    return KEY_NONE if info["record_flags"] & KEY_MISSING else KEY_SANCTUARY


def _readings(station: Station, count: int, every_s: float = 0.11) -> list[dict[str, Any]]:
    """`count` fresh 10 Hz readings (dicts)."""
    readings: list[dict[str, Any]] = []
    for _ in range(count):
        readings.append(station.sensors())
        time.sleep(every_s)
    return readings


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


class Kind:
    params: dict[str, Check] = {}
    measures: tuple[str, ...] = ()
    needs_fixture = False

    def measure(self, station: Station, params: dict[str, Any]) -> dict[str, float]:
        """Return {measurement name: value}."""
        raise NotImplementedError


class Identity(Kind):
    measures = ("protocol_match", "boot_confirmed", "uptime_s")

    def measure(self, station: Station, params: dict[str, Any]) -> dict[str, float]:
        info = station.info()
        station.report.serial = info["unit_serial"].decode(errors="replace")
        station.report.firmware_hash = info["firmware_hash"].hex()
        return {
            "protocol_match": float(info["protocol_hash"] == ir.protocol_hash()),
            "boot_confirmed": float(info["boot_state"] in (BOOT_CONFIRMED, BOOT_DEVELOPMENT)),
            "uptime_s": info["uptime_ms"] / 1000,
        }


class Sensor(Kind):
    params = {"sensor": _one_of(SENSORS)}
    measures = ("temperature_c", "code_spread")

    def measure(self, station: Station, params: dict[str, Any]) -> dict[str, float]:
        index = SENSORS.index(params["sensor"])
        readings = _readings(station, 10)
        codes = [reading["adc"][index] for reading in readings]
        return {
            "temperature_c": _mean([reading[f"{params['sensor']}_mc"] / 1000 for reading in readings]),
            "code_spread": float(max(codes) - min(codes)),  # a live ADC is never perfectly still
        }


class HeaterStep(Kind):
    """Idle current, then the current and the rise while heating; and whether the unit holds its
    stuck-heater fault for the zone (a shorted H-bridge: the supervisor has opened the heater
    enable relay, so the heater draws nothing, idle or driven)."""

    params = {"zone": _one_of(ZONES), "level_permille": _number(1, 1000), "seconds": _number(1, 600)}
    measures = ("idle_current_a", "current_a", "rise_c", "stuck_latched")

    def measure(self, station: Station, params: dict[str, Any]) -> dict[str, float]:
        zone = params["zone"]
        channel, current, temp = f"drive_{zone}", f"current_{zone}_ma", f"pad_{zone}_mc"
        station.override(channel, 0, 2000)
        idle = _readings(station, 5)
        start_c = _mean([reading[temp] for reading in idle]) / 1000
        duration_ms = int(params["seconds"] * 1000)
        station.override(channel, params["level_permille"], duration_ms + 1000)
        try:
            driven = []
            deadline = time.monotonic() + params["seconds"]
            while time.monotonic() < deadline:
                station.override(channel, params["level_permille"], 2000)  # keep the dead man happy
                driven += _readings(station, 3)
            end_c = _mean([reading[temp] for reading in driven[-3:]]) / 1000
        finally:
            station.override(channel, 0, 0)
        return {
            "idle_current_a": _mean([reading[current] for reading in idle]) / 1000,
            "current_a": _mean([reading[current] for reading in driven[len(driven) // 2 :]]) / 1000,
            "rise_c": end_c - start_c,
            "stuck_latched": float(station.info()["fault_mask"] >> FAULT_CODES[f"stuck_{zone}"] & 1),
        }


class RunawayTrip(Kind):
    """Lower the unit's trip temperature just above the pads (limits apply at boot: reboot),
    heat until the supervisor trips, check every drive is off, then restore the
    configuration, reboot, and check the unit comes back clean and takes a set point."""

    params = {"zone": _one_of(ZONES), "trip_above_c": _number(0.1, 10), "timeout_s": _number(1, 3600)}
    measures = ("trip_s", "current_after_trip_a", "recovered")
    overtemp = 1 << enums.FaultCode.overtemp

    def measure(self, station: Station, params: dict[str, Any]) -> dict[str, float]:
        client, zone = station.client, params["zone"]
        original = client.request("config_read", timeout=3)
        fields = _field_paths("response", "config_read")
        config = dict(zip(fields, original, strict=True))
        reading = station.sensors()  # the trip is on the hotter pad: above both, heating must get there
        hottest_mc = max(reading["pad_left_mc"], reading["pad_right_mc"])
        trip_mc = max(30_000, hottest_mc + int(params["trip_above_c"] * 1000))
        config.update(trip_mc=trip_mc, setpoint_max_mc=min(config["setpoint_max_mc"], trip_mc - 1000))
        config["setpoint_min_mc"] = min(config["setpoint_min_mc"], config["setpoint_max_mc"])
        client.request("config_write", [config[name] for name in fields], timeout=10)
        trip_s, after_a = math.nan, math.nan
        try:
            _reboot(station)
            started = time.monotonic()
            while time.monotonic() - started < params["timeout_s"]:
                station.override(f"drive_{zone}", 1000, 2000)
                if station.info()["fault_mask"] & self.overtemp:
                    trip_s = time.monotonic() - started
                    break
                time.sleep(0.2)
            if not math.isnan(trip_s):
                time.sleep(0.3)
                after = _readings(station, 3)
                after_a = max(reading["current_left_ma"] + reading["current_right_ma"] for reading in after) / 1000
        finally:
            station.override(f"drive_{zone}", 0, 0)
            client.request("config_write", original, timeout=10)
            _reboot(station)
        recovered = station.info()["fault_mask"] == 0
        if recovered:
            try:
                client.request("set_targets", [0, 0], timeout=3)
            except DeviceError:
                recovered = False
        return {"trip_s": trip_s, "current_after_trip_a": after_a, "recovered": float(recovered)}


def _reboot(station: Station, method: str = "reset", timeout: float = 20.0) -> tuple[dict[str, Any], float]:
    """Reboot the unit (schema RebootMethod); return its info once it answers from the new
    boot, and the seconds that took from the request's answer. SomaError after `timeout`."""
    before = station.client.uptime()
    station.client.request("reboot", [0, int(enums.RebootMethod[method])], timeout=3)
    station.expected_resets += 1
    started = time.monotonic()
    try:
        info = station.client.await_new_boot(before, timeout)
    except ManagementTimeout as exc:
        raise SomaError(str(exc)) from None
    return info, time.monotonic() - started


class Output(Kind):
    params = {"channel": _one_of(("haptic", "wake_light")), "level_permille": _number(1, 1000)}
    measures = ("measured_permille", "off_permille")
    needs_fixture = True
    instrument = {"haptic": "MEAS:HAPT?", "wake_light": "MEAS:LIGHT?"}

    def measure(self, station: Station, params: dict[str, Any]) -> dict[str, float]:
        command = self.instrument[params["channel"]]
        station.override(params["channel"], params["level_permille"], 5000)
        try:
            # A unit just rebooted by an earlier step drives nothing until its boot
            # self-checks pass (a provisioned unit's boot takes longer): wait for them.
            deadline = time.monotonic() + ARMING_S
            while station.fixture_value(command) == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.3)
            on = _mean([station.fixture_value(command) for _ in range(3)])
        finally:
            station.override(params["channel"], 0, 0)
        time.sleep(0.3)
        return {"measured_permille": on, "off_permille": station.fixture_value(command)}


class RadioLoopback(Kind):
    """The fixture's reference radio sends beacons signed with the unit's key (the operator's
    key file, or on an unprovisioned unit with --test-key the public bench key, which the
    bench provisions first: the report says the unit left with it); the unit must accept
    them, and the fixture must hear the unit's own beacons."""

    params = {"reference_beacons": _number(1, 1000), "seconds": _number(1, 120)}
    measures = ("received_ratio", "heard_per_s")
    needs_fixture = True

    def measure(self, station: Station, params: dict[str, Any]) -> dict[str, float]:
        fixture = station.need_fixture()
        info = station.info()
        key, sanctuary_id = station.radio_key(info)
        if info["record_flags"] & KEY_MISSING:  # radio_key allowed it: --test-key
            station.client.provision(sanctuary_id, BENCH_BED_ID, key)
            station.expected_resets += 1
            station.report.key_left = KEY_BENCH
            station.report.notes.append(
                f"the unit leaves holding the PUBLIC bench test key (sanctuary {sanctuary_id}, bed {BENCH_BED_ID}; "
                "--test-key): anyone can sign beacons it accepts: `soma provision` gives it its sanctuary key"
            )
        before = station.client.request_fields("loop_stats", timeout=3)["radio_accepted"]
        fixture.ask("RADI:CLEAR")
        started = time.monotonic()
        count = int(params["reference_beacons"])
        epoch = int(time.time()) & 0xFFFF
        for seq in range(1, count + 1):
            fixture.ask(f"RADI:SEND {_reference_beacon(key, sanctuary_id, epoch, seq).hex()}")
            time.sleep(max(0.0, started + seq * params["seconds"] / count - time.monotonic()))
        time.sleep(0.5)  # the last ones in flight
        elapsed = time.monotonic() - started
        heard = float(fixture.ask("RADI:HEARD?"))
        accepted = station.client.request_fields("loop_stats", timeout=3)["radio_accepted"] - before
        return {"received_ratio": accepted / count, "heard_per_s": heard / elapsed}


def _field_paths(kind: str, message: str) -> list[str]:
    """The flat field names of a management payload, in wire order ("zone_left.kp_q16", ...)."""
    name = codec.payload_name(int(enums.FrameKind[kind]), int(enums.MessageId[message]))
    return [leaf.path for leaf in ir.all_messages()[name].fields]


def _reference_beacon(key: bytes, sanctuary_id: int, epoch: int, seq: int) -> bytes:
    return auth.signed_beacon(
        key,
        sanctuary_id=sanctuary_id,
        bed_id=REFERENCE_BED_ID,
        boot_epoch=epoch,
        seq=seq,
        root_id=REFERENCE_BED_ID,
        root_seq=seq,
    )


class Stability(Kind):
    """Resets the plan did not ask for (a hang caught by the watchdog, a brown-out): every
    boot announces itself with a boot event."""

    measures = ("unexpected_resets",)

    def measure(self, station: Station, params: dict[str, Any]) -> dict[str, float]:
        station.info()
        events = station.boot_events()[station.boot_events_before :]
        unexpected = len(events) - station.expected_resets
        if unexpected > 0:
            causes = ", ".join(RESET_CAUSES.get(values[0], str(values[0])) for values in events)
            station.report.notes.append(f"unit reset during the bench ({causes})")
        return {"unexpected_resets": float(max(0, unexpected))}


class Watchdog(Kind):
    """Ask the firmware to hang on purpose: the watchdog must reset the unit."""

    measures = ("reset_s", "cause_watchdog")
    watchdog = int(enums.ResetCause.watchdog)

    def measure(self, station: Station, params: dict[str, Any]) -> dict[str, float]:
        info, reset_s = _reboot(station, "watchdog", timeout=10.0)
        return {"reset_s": reset_s, "cause_watchdog": float(info["reset_cause"] == self.watchdog)}


KINDS: dict[str, Kind] = {
    "identity": Identity(),
    "sensor": Sensor(),
    "heater_step": HeaterStep(),
    "runaway_trip": RunawayTrip(),
    "output": Output(),
    "radio_loopback": RadioLoopback(),
    "stability": Stability(),
    "watchdog": Watchdog(),
}
