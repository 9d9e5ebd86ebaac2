"""`soma demo`: a night in a Soma Sanctuary, end to end, on virtual beds.

Blank virtual beds and the calibration bath come up; then, as on a factory floor and in a
bedroom: every bed is flashed (in parallel), calibrated (all in the bath at once, its pads'
physics fast-forwarded), bench-tested (the plan's steps that need no fixture, in parallel),
provisioned into one sanctuary, given a night program (uploaded to one bed, spread by radio
to the others) and run through the night at compressed time: sleepers get into bed, fall
asleep, move, cycle through the stages, and are ushered awake together. What was measured
becomes the summary (every figure against its bar) and the report (soma.demo_report), with
the verdict of every bed's safety oracle (host/soma/sim/safety_oracle.py) on the whole run.

Time: the firmware always runs in real time. The night program is `night_minutes` long on
the global clock; the sleepers' night (8 h) is compressed into it; the pads' physics run
faster than the wall clock (pad_time_scale), so they follow the program's set points within
its phases.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from soma_protocol import auth, codec

from . import program as programs
from .errors import SomaError
from .management import TELEMETRY
from .sim.sanctuary_watch import snapshot
from .sim.world import WAKE_LIGHT

FAULTS = {
    "thermistor-open": "bed 2's left pad thermistor goes open: that zone must go off, the fault reported",
    "heater-stuck": "bed 2's left H-bridge shorts (full heat while it has supply): the supervisor must latch "
    "stuck_left and open the heater enable relay well before 42 degC, the others carry on",
    "root-loss": "the root (bed 1) drops off the radio: another bed must take over within 10 s",
    "spoofed-beacons": "an intruder broadcasts forged beacons claiming the root: every one must be rejected",
}
# The faults injected into one bed (FAULT_BED), and the latched faults that show it went safe.
BED_FAULTS = {
    "thermistor-open": {"sensor_left"},
    "heater-stuck": {"stuck_left"},
}
NIGHT_S = 8 * 3600.0  # the sleepers' night, compressed into the program
# The pads' physics during the night run this much faster than the wall clock per minute the
# night lasts less than 2 (a phase holds the same pad time), within these bounds: faster, and
# the firmware's PID (tuned for real pads, in real time) no longer tracks within 0.2 degC.
PAD_TIME_SCALE_2_MIN = 10.0
PAD_TIME_SCALE_MAX = 20.0
CALIBRATION_TIME_SCALE = 1000.0
BENCH_TIME_SCALE = 20.0
# The bench's heater steps heat this long: a minute of pad time at BENCH_TIME_SCALE (the plan's
# 15 s are for pads in real time).
BENCH_HEATER_STEP_S = 3.0
BUDGET_W_PER_BED = 120  # the Equal Rest budget: half of the 240 W each bed may draw
SANCTUARY_ID = 7
GRANT_EVERY_S = 2.0
FAULT_WAIT_S = 90.0
FAULT_BED = 2
BARS = {  # SPEC §8
    "sync_p50_us": 200,
    "sync_p99_us": 1_000,
    "sync_max_us": 2_000,
    "ushering_spread_ms": 5.0,
    "tracking_c": 0.2,
    "budget_ratio": 1.0,
    "calibration_c": 0.1,
    "failover_s": 10.0,
    "stuck_true_pad_c": 42.5,  # a stuck heater stopped before a true pad reaches this
    "safety_breaches": 0,
}


@dataclass
class DemoSettings:
    beds: int = 8
    night_minutes: float = 2.0
    inject: str | None = None
    out_dir: Path = Path("demo-results")
    seed: int = 1


@dataclass
class BedOutcome:
    number: int
    serial: str = ""
    calibration_error_c: float | None = None
    calibration_problem: str = ""
    bench_verdict: str = "skipped"
    bench_failures: list = field(default_factory=list)
    faults: list = field(default_factory=list)
    relay: str = ""  # the heater enable relay in the bed's last telemetry: "open" | "closed" | "" (none)
    safety: dict = field(default_factory=dict)  # its safety oracle's summary (SafetyOracle.summary)
    ok: bool = False  # calibrated within the bar, bench passed, no fault but the one injected, safe


@dataclass
class DemoOutcome:
    beds: list  # BedOutcome
    figures: dict  # name -> value
    checks: list  # (label, value text, bar text, ok)
    report: object = None  # soma.demo_report.NightReport
    paths: tuple = ()
    stage_seconds: dict = field(default_factory=dict)

    @property
    def ok(self):
        return all(ok for _, _, _, ok in self.checks) and all(bed.ok for bed in self.beds)


def run_demo(settings, say=print):
    """Run the whole demo; `say(text)` reports progress. Returns the DemoOutcome with the
    report written to settings.out_dir."""
    from .demo_report import write_report
    from .sim.sanctuary import Sanctuary

    if settings.inject is not None and settings.inject not in FAULTS:
        raise SomaError(f"--inject: unknown fault {settings.inject!r} (one of: {', '.join(FAULTS)})")
    if (settings.inject in BED_FAULTS or settings.inject == "root-loss") and settings.beds < 2:
        raise SomaError(f"--inject {settings.inject} needs at least 2 beds")
    out_dir = Path(settings.out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SomaError(f"{out_dir}: cannot make the results directory ({exc.strerror or exc})") from None
    beds = [BedOutcome(n) for n in range(1, settings.beds + 1)]
    stages = {}
    records = _records(out_dir)
    with Sanctuary(beds=settings.beds, seed=settings.seed, flashed=False, sleepers=False) as sanctuary:
        with _stage(stages, "flash", say, f"flashing {settings.beds} blank beds in parallel"):
            _flash_all(sanctuary, beds, records)
        with _stage(stages, "calibrate", say, "calibrating every bed in the bath at once"):
            _calibrate_all(sanctuary, beds, records)
        _back_to_room(sanctuary)
        _clear_after_refusal(sanctuary, beds)
        with _stage(stages, "bench", say, "bench-testing every bed (JUnit XML and JSON in bench/)"):
            _bench_all(sanctuary, beds, records, out_dir / "bench")
        _back_to_room(sanctuary)
        outcome = run_night(sanctuary, settings, beds, say, stages)
    say("writing the report")
    outcome.paths = write_report(outcome.report, out_dir)
    return outcome


def _minutes(minutes):
    return f"{minutes:g} minute" + ("" if minutes == 1 else "s")


def run_night(sanctuary, settings, beds, say=print, stages=None):
    """The sanctuary's part on flashed beds: provision, upload the program, run the night
    (with settings.inject), judge it. The DemoOutcome, its report not yet written."""
    stages = {} if stages is None else stages
    night = Night(sanctuary, settings, beds, say)
    with _stage(stages, "provision", say, "provisioning the sanctuary key and bed ids"):
        night.provision()
    try:
        with _stage(stages, "program", say, "uploading the night program to bed 1; waiting for every bed"):
            night.upload_program()
        with _stage(stages, "night", say, f"the night: {_minutes(settings.night_minutes)} for 8 hours"):
            night.run()
        outcome = night.outcome()
    finally:
        night.close()
    outcome.stage_seconds = stages
    return outcome


class _stage:
    """Times a stage and announces it."""

    def __init__(self, stages, name, say, text):
        self.stages, self.name, self.say, self.text = stages, name, say, text

    def __enter__(self):
        self.say(self.text)
        self.started = time.monotonic()

    def __exit__(self, *exc):
        self.stages[self.name] = round(time.monotonic() - self.started, 1)


def _records(out_dir):
    from .traceability import Records

    return Records(str(out_dir / "traceability.sqlite"))


def _flash_all(sanctuary, beds, records):
    from .flashing import Image, flash
    from .unit import UnitLink

    image = Image.build()

    def one(bed):
        with UnitLink(bed.port) as link:
            return flash(link, image)

    with ThreadPoolExecutor(max_workers=len(beds)) as pool:
        results = list(pool.map(one, sanctuary.beds))
    for outcome, result in zip(beds, results, strict=True):
        outcome.serial = result.serial
        records.record(result.serial, "flash", result.status, result.firmware_hash, "demo", "", result.__dict__)
        if result.status != "installed":
            raise SomaError(f"bed {outcome.number}: flashing ended {result.status}")


def _calibrate_all(sanctuary, beds, records):
    from .calibration import Bath, calibrate_units
    from .serial_link import SerialLink

    numbers = [bed.number for bed in beds]
    sanctuary.set_time_scale(CALIBRATION_TIME_SCALE)
    sanctuary.place_in_bath(*numbers)
    links = [SerialLink(bed.port) for bed in sanctuary.beds]
    try:
        with SerialLink(sanctuary.bath.port, 9600) as bath_link:
            results = calibrate_units([link.management() for link in links], Bath(bath_link), station="demo")
    finally:
        for link in links:
            link.close()
        sanctuary.place_in_bath(*numbers, inside=False)
    for outcome, result in zip(beds, results, strict=True):
        if isinstance(result, SomaError):
            outcome.calibration_problem = str(result)
            records.record(outcome.serial, "calibrate", "fail", "", "demo", "", {"error": str(result)})
            continue
        outcome.calibration_error_c = result.max_error_after_c
        passed = result.max_error_after_c <= BARS["calibration_c"]
        records.record(
            result.serial, "calibrate", "pass" if passed else "fail", result.firmware_hash, "demo", "", result.__dict__
        )


def _back_to_room(sanctuary, within_c=1.0, timeout_s=20.0):
    """Let every pad settle back to room temperature (the bath leaves them at its coolest
    point, the bench's runaway trip hot), its physics fast-forwarded, before the next stage."""
    sanctuary.set_time_scale(CALIBRATION_TIME_SCALE)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        worlds = [bed.world for bed in sanctuary.beds]
        if all(abs(pad - world.room_c) <= within_c for world in worlds for pad in world.model.pad_c):
            break
        time.sleep(0.2)


def _clear_after_refusal(sanctuary, beds):
    """Calibration clears the faults it latched only when it completes: a unit it refused
    may still hold the bath's overtemp latch. Cleared as an operator would (`soma faults
    --clear`), the pads back at room temperature, so the unit goes on to the bench."""
    from .management import ALL_FAULTS
    from .serial_link import SerialLink

    for bed, outcome in zip(sanctuary.beds, beds, strict=True):
        if outcome.calibration_problem:
            with SerialLink(bed.port) as link:
                link.management().request("fault_clear", [ALL_FAULTS], timeout=3)


def _bench_all(sanctuary, beds, records, bench_dir):
    from .bench import DEFAULT_PLAN, KINDS, Plan, Station, run_plan, write_reports
    from .serial_link import SerialLink

    plan = Plan.load(DEFAULT_PLAN)
    plan = plan.only([step.id for step in plan.steps if not KINDS[step.kind].needs_fixture])
    plan = plan.with_params("heater_step", seconds=BENCH_HEATER_STEP_S)
    sanctuary.set_time_scale(BENCH_TIME_SCALE)
    bench_dir.mkdir(parents=True, exist_ok=True)

    def one(bed):
        with SerialLink(bed.port) as link:
            client = link.management()
            report = run_plan(plan, Station(client))
            client.request("set_targets", [0, 0], timeout=3)  # off the bench: pads off until the night
            return report

    with ThreadPoolExecutor(max_workers=len(beds)) as pool:
        reports = list(pool.map(one, sanctuary.beds))
    for outcome, report in zip(beds, reports, strict=True):
        outcome.bench_verdict = "pass" if report.passed else "fail"
        outcome.bench_failures = [step.id for step in report.steps if not step.passed]
        write_reports(report, bench_dir / f"bed{outcome.number}.xml", bench_dir / f"bed{outcome.number}.json", "demo")
        records.record(
            report.serial, "bench", outcome.bench_verdict, report.firmware_hash, "demo", "", report.as_dict()
        )


def night_program(beds, night_minutes, budget_w):
    """The night (examples/programs/night.toml's shape) compressed into `night_minutes`:
    wind-down warmth, sleep-onset cooling, deep-sleep hold, and the Wake-Dream Ushering with
    a smart window over its last stretch."""
    length = night_minutes * 60.0

    def at(fraction):
        return f"{max(1, round(fraction * length))}s"

    ushering = {"at": at(0.85), "ramp": at(0.08), "light": 100, "pad": 33, "haptic": "pulse"}
    # The smart window: 20 s at least (four 5 s epochs), after the last phase has begun.
    window_s = min(max(20.0, 0.15 * length), 0.4 * length - 1)
    if window_s >= 20.0:
        ushering["smart_window"] = f"{round(window_s)}s"
    return programs.from_data(
        {
            "id": 7,
            "name": "demo night",
            "duration": at(1.0),
            "budget_w": budget_w,
            "beds": beds,
            "phase": [
                {"at": "0s", "pad": 34, "light": 20, "light_ramp": at(0.02)},  # wind-down warmth
                {"at": at(0.2), "pad": 29, "light": 0, "light_ramp": at(0.03)},  # sleep-onset cooling
                {"at": at(0.45), "pad": 31},  # deep-sleep hold
            ],
            "ushering": ushering,
        }
    )


def pad_time_scale(night_minutes):
    return min(PAD_TIME_SCALE_MAX, max(PAD_TIME_SCALE_2_MIN, PAD_TIME_SCALE_2_MIN * 2.0 / night_minutes))


class Night:
    """The sanctuary part of the demo: provisioning, the program, the night and its figures."""

    def __init__(self, sanctuary, settings, beds, say):
        from .sim.sanctuary_watch import SanctuaryWatch

        self.sanctuary = sanctuary
        self.settings = settings
        self.beds = beds
        self.say = say
        self.key = bytes((settings.seed * 37 + i) & 0xFF for i in range(32))
        self.watch = SanctuaryWatch(sanctuary, self.key, SANCTUARY_ID)
        self.budget_w = BUDGET_W_PER_BED * settings.beds
        self.program = night_program(settings.beds, settings.night_minutes, self.budget_w)
        self.joined = self.start_host = None
        self.start_us = 0
        self.fault_at = None
        self.fault_note = ""
        self._intruder = None

    def close(self):
        if self._intruder is not None:
            self._intruder.set()
        self.watch.stop()

    def provision(self):
        self.joined = self.watch.provision()
        self.watch.start()

    def upload_program(self):
        time.sleep(3)  # a few beacons: the beds agree on a root and a clock
        status = self._status(1)
        lead_s = 6.0
        self.start_us = status["global_time_us"] + round(lead_s * 1e6)
        self.watch.request(1, "program_upload", programs.compile_program(self.program, 1, self.start_us))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            versions = [self._status(n)["program_version"] for n in self._numbers()]
            if versions == [1] * len(versions):
                break
            time.sleep(0.5)
        else:
            raise SomaError(f"the program did not reach every bed within 30 s (versions {versions})")
        now_us = self._status(1)["global_time_us"]
        self.start_host = time.monotonic() + (self.start_us - now_us) / 1e6

    def run(self):
        from .sim.sleeper import Sleeper

        scale = NIGHT_S / (self.settings.night_minutes * 60.0)
        self.sanctuary.set_time_scale(pad_time_scale(self.settings.night_minutes))
        for index, bed in enumerate(self.sanctuary.beds):
            bed.world.put_sleeper(Sleeper(f"demo/{self.settings.seed}/{index}", night_s=NIGHT_S, time_scale=scale))
            bed.world.oracle.new_peak()  # the night's hottest pads (the bath held them at 42 degC)
        length = self.settings.night_minutes * 60.0
        inject_at = self.start_host + length / 2 if self.settings.inject else None
        end = self.start_host + length + 3
        while (now := time.monotonic()) < end:
            if inject_at is not None and now >= inject_at and self.fault_at is None:
                self.fault_at = now
                self._inject(self.settings.inject)
            if now >= self.start_host - 2:
                self._sample_grants()
            time.sleep(max(0.0, min(GRANT_EVERY_S, end - time.monotonic())))
        if self.settings.inject in BED_FAULTS:
            # The bed is watched until it faults (or FAULT_WAIT_S); the night's figures stay
            # those of the night.
            track = self.watch.tracks[FAULT_BED - 1]
            deadline = time.monotonic() + FAULT_WAIT_S
            while time.monotonic() < deadline and not any(
                name == "fault_event" for name, _ in snapshot(track.client.events)
            ):
                time.sleep(0.5)
            time.sleep(1.0)  # the telemetry of the bed in its safe state

    def _sample_grants(self):
        from .management import ManagementTimeout

        for number, track in zip(self._numbers(), self.watch.tracks, strict=True):
            try:
                grant = self._status(number, timeout=1.0)["grant_w"]
            except ManagementTimeout:
                continue  # a bed that just faulted or restarted: the next round
            track.grants.append((time.monotonic() - self.start_host, grant))

    def _inject(self, fault):
        self.say(f"injecting: {FAULTS[fault]}")
        bed = self.sanctuary.beds[FAULT_BED - 1]
        if fault == "thermistor-open":
            bed.world.model.inject("open", 0)
        elif fault == "heater-stuck":
            bed.world.model.inject("bridge_short", 0)
        elif fault == "root-loss":
            self.sanctuary.world.radio.partition([0], range(1, self.settings.beds))
        else:
            self._intruder = threading.Event()
            threading.Thread(target=self._spoof, args=(self._intruder,), daemon=True).start()

    def _spoof(self, stop):
        """Forged beacons twice a second: bed id 0 (lower than any) claiming the root, signed
        with a key that is not the sanctuary's."""
        forged_key = bytes(32)
        seq = 0
        while not stop.wait(0.5):
            seq += 1
            fields = {
                "sanctuary_id": SANCTUARY_ID,
                "bed_id": 0,
                "boot_epoch": 1,
                "seq": seq,
                "flags": 0b11,  # synced, root
                "root_id": 0,
                "root_seq": seq,
                "global_time_us": seq * 1_000_000,  # a clock of its own
                "tag": b"",
            }
            values = [fields.get(leaf.path, 0) for leaf in codec.MESSAGES["beacon"].fields]
            self.sanctuary.world.inject_radio(auth.sign_beacon(forged_key, values))

    def _status(self, number, timeout=5.0):
        """What bed `number` knows of the sanctuary (sanctuary_status fields)."""
        return self.watch.request_fields(number, "sanctuary_status", [0], timeout=timeout)

    def _roots(self, numbers):
        """The roots these beds follow."""
        return {self._status(n)["root_id"] for n in numbers}

    def _numbers(self):
        return range(1, self.settings.beds + 1)

    # ---- the figures

    def outcome(self):
        from .demo_report import BedRow, Event, NightReport, SummaryRow

        watch = self.watch
        start, length = self.start_host, self.settings.night_minutes * 60.0
        end = start + length
        numbers = list(self._numbers())
        faulty = FAULT_BED if self.settings.inject in BED_FAULTS else None
        healthy = [n for n in numbers if n != faulty]
        if self.settings.inject == "root-loss":
            healthy = [n for n in numbers if n != 1]
        sync_from = max(self.joined + 30, start)
        errors = watch.pairwise_errors_us(sync_from, end, step=0.2, numbers=healthy if len(healthy) > 1 else None)
        onsets = [at for n, at in zip(numbers, watch.onsets(start), strict=True) if n in healthy and at is not None]
        figures = {
            "sync_p50_us": _percentile(errors, 0.5),
            "sync_p99_us": _percentile(errors, 0.99),
            "sync_max_us": max(errors, default=None),
            "ushering_spread_ms": (max(onsets) - min(onsets)) * 1000 if len(onsets) == len(healthy) else None,
            "budget_ratio": max(
                (w for at, w in snapshot(self.sanctuary.world.drive_w) if start <= at <= end), default=0
            )
            / self.budget_w,
        }
        enable = TELEMETRY["heater_enable"]
        for track, bed, summary in zip(watch.tracks, self.beds, self.sanctuary.safety(), strict=True):
            bed.faults = sorted(
                {
                    codec.render("fault_event", values)["code"]
                    for name, values in snapshot(track.client.events)
                    if name == "fault_event"
                }
            )
            last = snapshot(track.frames)[-5:]
            if last:
                bed.relay = "closed" if any(values[enable] for _, values in last) else "open"
            bed.safety = summary
        traces = [self._trace(track, bed) for track, bed in zip(watch.tracks, self.beds, strict=True)]
        tracking = [_tracking_error(trace) for trace, n in zip(traces, numbers, strict=True) if n in healthy]
        figures["tracking_c"] = max((error for error in tracking if error is not None), default=None)
        stats = [
            watch.request_fields(n, "loop_stats") for n in numbers if n != 1 or self.settings.inject != "root-loss"
        ]
        figures["beacons_rejected"] = sum(s["radio_rejected"] for s in stats)
        figures["beacons_accepted"] = sum(s["radio_accepted"] for s in stats)
        checks = self._checks(figures, healthy)
        ushering = min(onsets) if onsets else None
        events = [Event((ushering - start), "Wake-Dream Ushering", "ushering")] if ushering else []
        for fraction, label in ((0.2, "sleep-onset cooling"), (0.45, "deep-sleep hold")):
            events.append(Event(fraction * length, label, "phase"))
        if self.fault_at is not None:
            events.append(Event(self.fault_at - start, f"fault injected: {self.settings.inject}", "fault"))
        events += self._fault_events(start)
        events += [
            Event(at - start, f"bed {bed.number}: safety breach, {rule}", "fault")
            for bed in self.beds
            for at, rule, _ in bed.safety["first"]
        ]
        rows = [SummaryRow(label, value, bar, ok) for label, value, bar, ok in checks]
        for bed in self.beds:
            bed.ok = self._bed_ok(bed)
        bed_rows = [
            BedRow(
                b.number,
                b.serial,
                b.calibration_error_c,
                b.bench_verdict,
                b.faults,
                b.ok,
                b.calibration_problem,
                relay=b.relay,
                max_true_pad_c=b.safety["max_pad_c"],
                breaches=_breached_rules(b.safety),
            )
            for b in self.beds
        ]
        ok = all(row.ok for row in rows) and all(row.ok for row in bed_rows)
        inject = self.settings.inject
        title = f"Soma Sanctuary: {len(numbers)} beds, an 8-hour night in {_minutes(self.settings.night_minutes)}"
        if inject:
            title += f", {inject} injected"
        report = NightReport(
            title, self.budget_w, traces, bed_rows, rows, events, inject, ok, FAULTS[inject] if inject else ""
        )
        return DemoOutcome(self.beds, figures, checks, report)

    def _fault_events(self, start):
        """When each bed's telemetry first showed a latched fault during the night."""
        from .demo_report import Event
        from .management import fault_names

        mask = TELEMETRY["fault_mask"]
        events = []
        for number, track in zip(self._numbers(), self.watch.tracks, strict=True):
            latched = [(at, values[mask]) for at, values in snapshot(track.frames) if at >= start and values[mask]]
            if latched:
                at, faults = latched[0]
                events.append(Event(at - start, f"bed {number}: {', '.join(fault_names(faults))}", "fault"))
        return events

    def _trace(self, track, bed):
        from .demo_report import BedTrace

        trace = BedTrace(bed.number, bed.serial, [], [], [], [], [], [], [], [])
        sleeper = track.bed.world.sleeper
        for at, values in track.frames:
            if at < self.start_host - 5:
                continue
            t = at - self.start_host
            trace.times_s.append(t)
            trace.pad_c.append(values[TELEMETRY["pad_left_mc"]] / 1000)
            setpoint = values[TELEMETRY["setpoint_left_mc"]]
            trace.setpoint_c.append(setpoint / 1000 if setpoint else None)
            trace.light_permille.append(values[TELEMETRY[f"outputs_permille.{WAKE_LIGHT}"]])
            drive = abs(values[TELEMETRY["drive_left_permille"]]) + abs(values[TELEMETRY["drive_right_permille"]])
            trace.drawn_w.append(drive * 120 / 1000)
            trace.sleep_state.append(_SLEEP_STATES.get(values[TELEMETRY["sleep_state"]], "unknown"))
            truth = sleeper.vitals(at - track.bed.world.sleeper_since) if sleeper is not None else None
            trace.truth_stage.append("empty" if truth is None or not truth.present else truth.stage)
        trace.grants = list(track.grants)  # (seconds since the night started, W)
        return trace

    def _checks(self, figures, healthy):
        checks = []

        def check(label, value, bar_value, unit, fmt="{:.0f}"):
            if value is None:
                checks.append((label, "not measured", f"<= {bar_value:g} {unit}".strip(), False))
                return
            ok = value <= bar_value
            checks.append((label, f"{fmt.format(value)} {unit}".strip(), f"<= {bar_value:g} {unit}".strip(), ok))

        check("sync error p50", figures["sync_p50_us"], BARS["sync_p50_us"], "us")
        check("sync error p99", figures["sync_p99_us"], BARS["sync_p99_us"], "us")
        check("sync error max", figures["sync_max_us"], BARS["sync_max_us"], "us")
        check("ushering onset spread", figures["ushering_spread_ms"], BARS["ushering_spread_ms"], "ms", "{:.2f}")
        check("pad tracking error", figures["tracking_c"], BARS["tracking_c"], "degC", "{:.3f}")
        check("power: most drawn / budget", figures["budget_ratio"], BARS["budget_ratio"], "", "{:.2f}")
        rejected = figures["beacons_rejected"]
        if self.settings.inject == "spoofed-beacons":
            checks.append(("forged beacons rejected", f"{rejected}", "> 0, root unchanged", rejected > 0))
        else:
            checks.append(("beacons rejected", f"{rejected}", "0", rejected == 0))
        checks += self._fault_checks(healthy)
        checks.append(self._safety_check())
        return checks

    def _safety_check(self):
        """The safety oracles' verdict on the whole run, every bed (SPEC §8: 0 breaches)."""
        breaches = sum(bed.safety["breaches"] for bed in self.beds)
        if breaches:
            first = [f"bed {bed.number}: {rule}" for bed in self.beds for _, rule, _ in bed.safety["first"]]
            value = f"{breaches}: {', '.join(first)}"
        else:
            value = f"0 over {sum(bed.safety['observations'] for bed in self.beds)} observations"
        return ("safety oracle breaches", value, str(BARS["safety_breaches"]), breaches <= BARS["safety_breaches"])

    def _fault_checks(self, healthy):
        """What the injected fault must have done, and that the others saw no fault."""
        inject = self.settings.inject
        checks = []
        others = [b for b in self.beds if b.number in healthy]
        quiet = [b.number for b in others if b.faults]
        checks.append(
            (
                "faults on the other beds" if inject else "faults",
                "none" if not quiet else f"beds {quiet}",
                "none",
                not quiet,
            )
        )
        if inject in BED_FAULTS:
            faults = self.beds[FAULT_BED - 1].faults
            hit = sorted(set(faults) & BED_FAULTS[inject])
            drive = TELEMETRY["drive_left_permille"]
            last = [values[drive] for _, values in snapshot(self.watch.tracks[FAULT_BED - 1].frames)[-5:]]
            left_off = bool(last) and not any(last)
            drive_text = "unknown (no telemetry)" if not last else "off" if left_off else "on"
            value = f"{', '.join(faults) or 'no fault'}; left drive {drive_text}"
            checks.append(
                (f"bed {FAULT_BED} faulted safe", value, "a latched fault, left drive off", bool(hit) and left_off)
            )
        if inject == "heater-stuck":  # the H-bridge heats whatever its drive: only the relay stops it
            bed = self.beds[FAULT_BED - 1]
            hottest = bed.safety["max_pad_c"]
            checks.append(
                (
                    f"bed {FAULT_BED} heater enable relay",
                    f"{bed.relay or 'unknown (no telemetry)'}; true pad max {hottest:.1f} degC",
                    f"open; true pad < {BARS['stuck_true_pad_c']:g} degC",
                    bed.relay == "open" and hottest < BARS["stuck_true_pad_c"],
                )
            )
        if inject == "root-loss":
            failover = self.watch.settled_after(self.fault_at, healthy, time.monotonic() - 1)
            roots = self._roots(healthy)
            value = "never" if failover is None else f"{failover:.1f} s, root {sorted(roots)}"
            checks.append(
                (
                    "root failover",
                    value,
                    f"<= {BARS['failover_s']:g} s",
                    failover is not None and failover <= BARS["failover_s"],
                )
            )
        if inject == "spoofed-beacons":
            roots = self._roots(healthy)
            checks.append(("root after forgeries", str(sorted(roots)), "[1]", roots == {1}))
        return checks

    def _bed_ok(self, bed):
        expected_fault = self.settings.inject in BED_FAULTS and bed.number == FAULT_BED
        calibrated = bed.calibration_error_c is not None and bed.calibration_error_c <= BARS["calibration_c"]
        safe = not bed.safety["breaches"]
        return calibrated and bed.bench_verdict == "pass" and (expected_fault or not bed.faults) and safe


_SLEEP_STATES = {0: "unknown", 1: "awake", 2: "light", 3: "deep"}


def _breached_rules(safety):
    """rule -> breaches, for the rules a safety oracle's summary saw breached."""
    return {rule: count for rule, count in safety["counts"].items() if count}


def _percentile(values, fraction):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * fraction))]


def _tracking_error(trace, settled_within_c=0.1):
    """The worst |pad - set point| after settling (SPEC §8): from when the pad first came
    within `settled_within_c` of a set point until the set point changed, over the night;
    None if no set point was ever reached."""
    worst = None
    last, settled = None, False
    for t, pad, setpoint in zip(trace.times_s, trace.pad_c, trace.setpoint_c, strict=True):
        if setpoint != last:
            last, settled = setpoint, False
        if setpoint is None or t < 0:
            continue
        error = abs(pad - setpoint)
        settled = settled or error <= settled_within_c
        if settled:
            worst = error if worst is None else max(worst, error)
    return worst


def summary_lines(outcome):
    """The summary as (text, ok) lines: every bed, then every figure against its bar."""
    lines = []
    for bed in outcome.beds:
        if bed.calibration_error_c is None:
            calibration = f"refused ({bed.calibration_problem})" if bed.calibration_problem else "-"
        else:
            calibration = f"{bed.calibration_error_c:.3f} degC"
        bench = bed.bench_verdict + (f" ({', '.join(bed.bench_failures)})" if bed.bench_failures else "")
        faults = ", ".join(bed.faults) or "none"
        text = f"bed {bed.number} {bed.serial}: calibration {calibration}, bench {bench}, faults {faults}"
        if bed.safety:
            breaches = ", ".join(f"{rule} {n}" for rule, n in _breached_rules(bed.safety).items()) or "0 breaches"
            text += f", relay {bed.relay or 'unknown'}, true pad max {bed.safety['max_pad_c']:.1f} degC"
            text += f", safety oracle: {breaches}"
        lines.append((text, bed.ok))
    for label, value, bar, ok in outcome.checks:
        lines.append((f"{label}: {value} (bar {bar})", ok))
    return lines
