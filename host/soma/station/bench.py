"""The bench test: a declarative plan (a TOML file) of steps, run against one unit.

A plan lists steps; each names a measuring kind (KINDS below) with its parameters and
puts limits on the measurements that kind makes. The code here only knows how to
measure; what to measure, in which order, and what passes is the plan's business.

    plan = Plan.load(DEFAULT_PLAN)
    report = run_plan(plan, Station(client, fixture))
    report.passed, report.steps[0].measurements

Some kinds need the station's fixture instrument (the calibration bath's test fixture:
photodiode, accelerometer, reference radio); a plan that has them needs --fixture.
"""

import hashlib
import math
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from soma_protocol import auth, codec, ir, schema

from .errors import SomaError
from .files import write_atomically
from .management import FAULT_CODES, DeviceError, ManagementTimeout

DEFAULT_PLAN = Path(__file__).with_name("plans") / "sb1.toml"
SENSORS = ("pad_left", "pad_right", "ambient")
ZONES = ("left", "right")
CHANNELS = {str(name): int(value) for name, value in schema.OutputChannel.encmapping.items()}
RESET_CAUSES = {int(value): str(name) for name, value in schema.ResetCause.encmapping.items()}
BOOT_CONFIRMED = int(schema.BootState.encmapping["confirmed"])
BOOT_DEVELOPMENT = int(schema.BootState.encmapping["development"])
KEY_MISSING = 16  # InfoResponse record_flags
# Provisioned by the bench on a unit that has no key yet, so that its radio can be
# tested; `soma provision` replaces it with the sanctuary's own key.
BENCH_KEY = hashlib.sha256(b"soma bench reference key").digest()
BENCH_SANCTUARY_ID = 0xBE0C
REFERENCE_BED_ID = 0xFFFE  # the fixture's reference radio, as a sender


class PlanError(SomaError):
    """A plan file that cannot run: the message says where and why."""


@dataclass
class Measurement:
    name: str
    value: float
    low: float | None = None
    high: float | None = None

    @property
    def limited(self):
        return self.low is not None or self.high is not None

    @property
    def passed(self):
        if math.isnan(self.value):
            return False
        return (self.low is None or self.value >= self.low) and (self.high is None or self.value <= self.high)


@dataclass
class StepResult:
    id: str
    kind: str
    measurements: list = field(default_factory=list)
    error: str = ""  # the step could not measure: it fails with this message
    seconds: float = 0.0

    @property
    def passed(self):
        return not self.error and all(m.passed for m in self.measurements if m.limited)

    @property
    def message(self):
        if self.error:
            return self.error
        return "; ".join(_describe(m) for m in self.measurements if m.limited and not m.passed)


@dataclass
class BenchReport:
    plan: str
    plan_version: int
    serial: str = ""
    firmware_hash: str = ""
    steps: list = field(default_factory=list)
    started: float = 0.0
    seconds: float = 0.0
    notes: list = field(default_factory=list)

    @property
    def passed(self):
        return bool(self.steps) and all(step.passed for step in self.steps)

    def as_dict(self):
        return {
            "plan": self.plan,
            "plan_version": self.plan_version,
            "serial": self.serial,
            "firmware_hash": self.firmware_hash,
            "passed": self.passed,
            "started": self.started,
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
            "steps": [
                {
                    "id": step.id,
                    "kind": step.kind,
                    "passed": step.passed,
                    "message": step.message,
                    "seconds": round(step.seconds, 3),
                    "measurements": [
                        {
                            "name": m.name,
                            "value": None if math.isnan(m.value) else m.value,
                            "min": m.low,
                            "max": m.high,
                            "passed": m.passed if m.limited else None,
                        }
                        for m in step.measurements
                    ],
                }
                for step in self.steps
            ],
        }


def _line(measurement):
    """One measurement as a line of text: name = value  (limits low..high)."""
    text = f"{measurement.name} = {measurement.value:g}"
    if measurement.limited:
        low, high = ("" if bound is None else f"{bound:g}" for bound in (measurement.low, measurement.high))
        text += f"  (limits {low}..{high}) {'ok' if measurement.passed else 'OUT'}"
    return text


def _describe(measurement):
    bounds = " and ".join(
        text
        for text in (
            f">= {measurement.low:g}" if measurement.low is not None else "",
            f"<= {measurement.high:g}" if measurement.high is not None else "",
        )
        if text
    )
    value = "no value" if math.isnan(measurement.value) else f"{measurement.value:g}"
    return f"{measurement.name} {value}, expected {bounds}"


# ---- the plan ------------------------------------------------------------------


@dataclass
class Step:
    id: str
    kind: str
    params: dict
    limits: dict  # measurement name -> (low, high)


@dataclass
class Plan:
    name: str
    version: int
    steps: list
    path: str = ""

    def only(self, step_ids):
        """This plan cut down to the given steps (in plan order)."""
        unknown = set(step_ids) - {step.id for step in self.steps}
        if unknown:
            known = ", ".join(step.id for step in self.steps)
            raise PlanError(f"{self.path}: no step {', '.join(sorted(unknown))} (steps: {known})")
        return Plan(self.name, self.version, [step for step in self.steps if step.id in step_ids], self.path)

    def with_params(self, kind, **params):
        """This plan with `params` set on every step of `kind`, checked as a plan file's are."""
        if kind not in KINDS:
            raise PlanError(f"no kind {kind!r} (known: {', '.join(sorted(KINDS))})")
        for name, value in params.items():
            check = KINDS[kind].params.get(name)
            if check is None:
                raise PlanError(f"{kind}: unknown parameter {name!r}")
            message = check(value)
            if message:
                raise PlanError(f"{kind}: {name} {message}")
        steps = [
            Step(step.id, step.kind, {**step.params, **params}, step.limits) if step.kind == kind else step
            for step in self.steps
        ]
        return Plan(self.name, self.version, steps, self.path)

    @property
    def needs_fixture(self):
        return any(KINDS[step.kind].needs_fixture for step in self.steps)

    @classmethod
    def load(cls, path):
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except OSError as exc:
            raise PlanError(f"{path}: cannot read the plan: {exc.strerror or exc}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PlanError(f"{path}: not a TOML file: {exc}") from None
        return cls.from_data(data, str(path))

    @classmethod
    def from_data(cls, data, where="plan"):
        unknown = set(data) - {"name", "version", "step"}
        if unknown:
            raise PlanError(f"{where}: unknown keys {', '.join(sorted(unknown))} (known: name, version, step)")
        if not isinstance(data.get("name"), str) or not isinstance(data.get("version"), int):
            raise PlanError(f"{where}: needs a name (text) and a version (integer)")
        raw_steps = data.get("step")
        if not isinstance(raw_steps, list) or not raw_steps:
            raise PlanError(f"{where}: no [[step]] tables")
        steps, seen = [], set()
        for number, raw in enumerate(raw_steps, 1):
            step = _parse_step(raw, f"{where}: step {number}")
            if step.id in seen:
                raise PlanError(f"{where}: step {number}: id {step.id!r} used twice")
            seen.add(step.id)
            steps.append(step)
        return cls(data["name"], data["version"], steps, where)


def _parse_step(raw, where):
    if not isinstance(raw, dict):
        raise PlanError(f"{where}: not a table")
    step_id, kind_name = raw.get("id"), raw.get("kind")
    if not isinstance(step_id, str) or not step_id:
        raise PlanError(f"{where}: needs an id")
    where = f"{where} ({step_id})"
    kind = KINDS.get(kind_name)
    if kind is None:
        raise PlanError(f"{where}: unknown kind {kind_name!r} (known: {', '.join(sorted(KINDS))})")
    params = {key: value for key, value in raw.items() if key not in ("id", "kind", "limits")}
    unknown = set(params) - set(kind.params)
    if unknown:
        raise PlanError(f"{where}: unknown parameters {', '.join(sorted(unknown))} for {kind_name}")
    for name, check in kind.params.items():
        if name not in params:
            raise PlanError(f"{where}: parameter {name!r} missing")
        message = check(params[name])
        if message:
            raise PlanError(f"{where}: {name} {message}")
    limits = {}
    for name, bounds in raw.get("limits", {}).items():
        if name not in kind.measures:
            raise PlanError(f"{where}: {kind_name} measures no {name!r} (it measures {', '.join(kind.measures)})")
        if not isinstance(bounds, dict) or not bounds or set(bounds) - {"min", "max"}:
            raise PlanError(f"{where}: limits.{name} must be {{ min = .., max = .. }} (either may be left out)")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bounds.values()):
            raise PlanError(f"{where}: limits.{name} bounds must be numbers")
        limits[name] = (bounds.get("min"), bounds.get("max"))
    return Step(step_id, kind_name, params, limits)


def _one_of(choices):
    return lambda value: None if value in choices else f"must be one of {', '.join(choices)}"


def _number(low, high):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            return f"must be a number in {low:g}..{high:g}"
        return None

    return check


# ---- the station ----------------------------------------------------------------


class Station:
    """What a step measures with: the unit's management client, the fixture (an object with
    ask(command) -> text, or None) and, for the radio, the sanctuary key (bytes, or None)."""

    def __init__(self, client, fixture=None, key=None):
        self.client = client
        self.fixture = fixture
        self.key = key
        self.expected_resets = 0
        self.boot_events_before = 0  # boot events already in when the plan started

    def info(self, timeout=3.0):
        return self.client.request_fields("info", timeout=timeout)

    def sensors(self):
        return self.client.request_fields("read_sensors", timeout=3.0)

    def override(self, channel, level, duration_ms):
        self.client.request("bench_override", [CHANNELS[channel], level, duration_ms], timeout=3.0)

    def need_fixture(self):
        if self.fixture is None:
            raise SomaError("this step needs the fixture (--fixture PORT)")
        return self.fixture

    def fixture_value(self, command):
        return float(self.need_fixture().ask(command))

    def boot_events(self):
        self.client.poll(0.05)
        return [values for name, values in self.client.events if name == "boot_event"]


def _readings(station, count, every_s=0.11):
    """`count` fresh 10 Hz readings (dicts)."""
    readings = []
    for _ in range(count):
        readings.append(station.sensors())
        time.sleep(every_s)
    return readings


def _mean(values):
    return sum(values) / len(values)


# ---- the measuring kinds -------------------------------------------------------


class Kind:
    params = {}
    measures = ()
    needs_fixture = False

    def measure(self, station, params):
        """Return {measurement name: value}."""
        raise NotImplementedError


class Identity(Kind):
    measures = ("protocol_match", "boot_confirmed", "uptime_s")

    def measure(self, station, params):
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

    def measure(self, station, params):
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

    def measure(self, station, params):
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
    overtemp = 1 << int(schema.FaultCode.encmapping["overtemp"])

    def measure(self, station, params):
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


def _reboot(station, method="reset", timeout=20.0):
    """Reboot the unit (schema RebootMethod); return its info once it answers from the new
    boot, and the seconds that took from the request's answer. SomaError after `timeout`."""
    before = station.client.uptime()
    station.client.request("reboot", [0, int(schema.RebootMethod.encmapping[method])], timeout=3)
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

    def measure(self, station, params):
        command = self.instrument[params["channel"]]
        station.override(params["channel"], params["level_permille"], 3000)
        try:
            time.sleep(0.3)
            on = _mean([station.fixture_value(command) for _ in range(3)])
        finally:
            station.override(params["channel"], 0, 0)
        time.sleep(0.3)
        return {"measured_permille": on, "off_permille": station.fixture_value(command)}


class RadioLoopback(Kind):
    """The fixture's reference radio sends beacons signed with the unit's key (the bench
    key on an unprovisioned unit, which the bench provisions first); the unit must accept
    them, and the fixture must hear the unit's own beacons."""

    params = {"reference_beacons": _number(1, 1000), "seconds": _number(1, 120)}
    measures = ("received_ratio", "heard_per_s")
    needs_fixture = True

    def measure(self, station, params):
        fixture = station.need_fixture()
        info = station.info()
        key, sanctuary_id = station.key, info["sanctuary_id"]
        if info["record_flags"] & KEY_MISSING:
            key, sanctuary_id = BENCH_KEY, BENCH_SANCTUARY_ID
            station.client.provision(sanctuary_id, 1, key)
            station.expected_resets += 1
            station.report.notes.append("provisioned the bench test key: run soma provision before use")
        elif key is None:
            raise SomaError("the unit holds a sanctuary key: give its key file (--key FILE) to test the radio")
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


def _field_paths(kind, message):
    """The flat field names of a management payload, in wire order ("zone_left.kp_q16", ...)."""
    name = codec.payload_name(int(schema.FrameKind.encmapping[kind]), int(schema.MessageId.encmapping[message]))
    return [leaf.path for leaf in ir.all_messages()[name].fields]


def _reference_beacon(key, sanctuary_id, epoch, seq):
    fields = [leaf.path for leaf in ir.all_messages()["beacon"].fields]
    values = [0] * len(fields)
    for name, value in {
        "sanctuary_id": sanctuary_id,
        "bed_id": REFERENCE_BED_ID,
        "boot_epoch": epoch,
        "seq": seq,
        "root_id": REFERENCE_BED_ID,
        "root_seq": seq,
    }.items():
        if name in fields:
            values[fields.index(name)] = value
    values[fields.index("tag")] = bytes(schema.TAG_LEN)
    return auth.sign_beacon(key, values)


class Stability(Kind):
    """Resets the plan did not ask for (a hang caught by the watchdog, a brown-out): every
    boot announces itself with a boot event."""

    measures = ("unexpected_resets",)

    def measure(self, station, params):
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
    watchdog = int(schema.ResetCause.encmapping["watchdog"])

    def measure(self, station, params):
        info, reset_s = _reboot(station, "watchdog", timeout=10.0)
        return {"reset_s": reset_s, "cause_watchdog": float(info["reset_cause"] == self.watchdog)}


KINDS = {
    "identity": Identity(),
    "sensor": Sensor(),
    "heater_step": HeaterStep(),
    "runaway_trip": RunawayTrip(),
    "output": Output(),
    "radio_loopback": RadioLoopback(),
    "stability": Stability(),
    "watchdog": Watchdog(),
}


# ---- running --------------------------------------------------------------------


def run_plan(plan, station, progress=None):
    """Run every step of `plan` in order; a step that cannot measure fails with its reason
    and the plan goes on. Return the BenchReport."""
    report = BenchReport(plan.name, plan.version, started=time.time())
    station.report = report
    station.boot_events_before = len(station.boot_events())
    started = time.monotonic()
    for index, step in enumerate(plan.steps):
        if progress:
            progress(index, len(plan.steps), step.id)
        result = StepResult(step.id, step.kind)
        step_started = time.monotonic()
        try:
            values = KINDS[step.kind].measure(station, step.params)
        except (SomaError, ManagementTimeout, DeviceError, ValueError) as exc:
            result.error = str(exc) or type(exc).__name__
            values = {}
        for name in KINDS[step.kind].measures:
            low, high = step.limits.get(name, (None, None))
            result.measurements.append(Measurement(name, float(values.get(name, math.nan)), low, high))
        if result.error:
            result.measurements = [m for m in result.measurements if not math.isnan(m.value)]
        result.seconds = time.monotonic() - step_started
        report.steps.append(result)
    report.seconds = time.monotonic() - started
    return report


def write_reports(report, junit_file=None, report_file=None, station_name=""):
    """The run as JUnit XML and/or its JSON report, each file written whole or not at all."""
    import json

    for path, text in (
        (junit_file, lambda: junit_xml(report, station_name)),
        (report_file, lambda: json.dumps(report.as_dict(), indent=2) + "\n"),
    ):
        if path:
            data = text().encode("utf-8")
            write_atomically(path, lambda f, data=data: f.write(data), "report")


def junit_xml(report, station_name=""):
    """The report as JUnit XML: one testsuite, one testcase per step."""
    from xml.etree import ElementTree as ET

    failures = sum(1 for step in report.steps if not step.passed and not step.error)
    errors = sum(1 for step in report.steps if step.error)
    suite = ET.Element(
        "testsuite",
        name=report.plan,
        tests=str(len(report.steps)),
        failures=str(failures),
        errors=str(errors),
        time=f"{report.seconds:.3f}",
        hostname=station_name,
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(report.started)),
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (("serial", report.serial), ("firmware_hash", report.firmware_hash)):
        ET.SubElement(properties, "property", name=name, value=value)
    for step in report.steps:
        case = ET.SubElement(suite, "testcase", classname=f"bench.{report.serial}", name=step.id)
        case.set("time", f"{step.seconds:.3f}")
        if step.error:
            ET.SubElement(case, "error", message=step.error, type="StepError")
        elif not step.passed:
            ET.SubElement(case, "failure", message=step.message, type="OutOfLimits")
        ET.SubElement(case, "system-out").text = "\n".join(_line(m) for m in step.measurements)
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
