"""The night of `soma demo`: on flashed beds, the sanctuary provisioned, the night program
uploaded to one bed and spread by radio, the night run at compressed time (sleepers get into
bed, fall asleep, move, cycle through the stages and are ushered awake together; a fault
injected half-way if asked) and measured: the figures, every bed's telemetry, the events.

Time: the firmware always runs in real time. The night program is `night_minutes` long on
the global clock; the sleepers' night (8 h) is compressed into it; the pads' physics run
faster than the wall clock (pad_time_scale), so they follow the program's set points within
its phases.
"""

import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from soma.demo.judging import FaultEvidence, bed_ok, breached_rules, judge
from soma.demo.outcome import BedOutcome, DemoOutcome
from soma.demo.settings import BED_FAULTS, FAULT_BED, FAULTS, DemoSettings
from soma.demo.stages import Stage
from soma.errors import SomaError
from soma.link.management import TELEMETRY
from soma.sanctuary import program as programs
from soma.sanctuary import program_wire
from soma.sim.sanctuary_watch import snapshot
from soma.sim.world import WAKE_LIGHT
from soma_protocol import auth, codec, constants, enums

if TYPE_CHECKING:
    from soma.demo.night_report import BedTrace, Event
    from soma.sanctuary.program import Program
    from soma.sim.sanctuary import Sanctuary
    from soma.sim.sanctuary_watch import BedTrack

NIGHT_S = 8 * 3600.0  # the sleepers' night, compressed into the program
# The pads' physics during the night run this much faster than the wall clock per minute the
# night lasts less than 2 (a phase holds the same pad time), within these bounds: faster, and
# the firmware's PID (tuned for real pads, in real time) no longer tracks within 0.2 degC.
PAD_TIME_SCALE_2_MIN = 10.0
PAD_TIME_SCALE_MAX = 20.0
BUDGET_W_PER_BED = 120  # the Equal Rest budget: half of the 240 W each bed may draw
SANCTUARY_ID = 7
GRANT_EVERY_S = 2.0
FAULT_WAIT_S = 90.0


def _minutes(minutes: float) -> str:
    return f"{minutes:g} minute" + ("" if minutes == 1 else "s")


def run_night(
    sanctuary: "Sanctuary",
    settings: DemoSettings,
    beds: list[BedOutcome],
    say: Callable[[str], object] = print,
    stages: dict[str, float] | None = None,
) -> DemoOutcome:
    """The sanctuary's part on flashed beds: provision, upload the program, run the night
    (with settings.inject), judge it. The DemoOutcome, its report not yet written."""
    stages = {} if stages is None else stages
    night = Night(sanctuary, settings, beds, say)
    with Stage(stages, "provision", say, "provisioning the sanctuary key and bed ids"):
        night.provision()
    try:
        with Stage(stages, "program", say, "uploading the night program to bed 1; waiting for every bed"):
            night.upload_program()
        with Stage(stages, "night", say, f"the night: {_minutes(settings.night_minutes)} for 8 hours"):
            night.run()
        outcome = night.outcome()
    finally:
        night.close()
    outcome.stage_seconds = stages
    return outcome


def night_program(beds: int, night_minutes: float, budget_w: int) -> "Program":
    """The night (examples/programs/night.toml's shape) compressed into `night_minutes`:
    wind-down warmth, sleep-onset cooling, deep-sleep hold, and the Wake-Dream Ushering with
    a smart window over its last stretch."""
    length = night_minutes * 60.0

    def at(fraction: float) -> str:
        return f"{max(1, round(fraction * length))}s"

    ushering: dict[str, Any] = {"at": at(0.85), "ramp": at(0.08), "light": 100, "pad": 33, "haptic": "pulse"}
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


def pad_time_scale(night_minutes: float) -> float:
    return min(PAD_TIME_SCALE_MAX, max(PAD_TIME_SCALE_2_MIN, PAD_TIME_SCALE_2_MIN * 2.0 / night_minutes))


class Night:
    """The sanctuary part of the demo: provisioning, the program, the night and its figures."""

    def __init__(
        self, sanctuary: "Sanctuary", settings: DemoSettings, beds: list[BedOutcome], say: Callable[[str], object]
    ) -> None:
        from soma.sim.sanctuary_watch import SanctuaryWatch

        self.sanctuary = sanctuary
        self.settings = settings
        self.beds = beds
        self.say = say
        self.key = bytes((settings.seed * 37 + i) & 0xFF for i in range(32))
        self.watch = SanctuaryWatch(sanctuary, self.key, SANCTUARY_ID)
        self.budget_w = BUDGET_W_PER_BED * settings.beds
        self.program = night_program(settings.beds, settings.night_minutes, self.budget_w)
        self.joined: float | None = None  # host clock (time.monotonic) when the beds were provisioned
        self.start_host: float | None = None  # host clock of the night's start; set by upload_program
        self.start_us = 0
        self.fault_at: float | None = None
        self.fault_note = ""
        self._intruder: threading.Event | None = None

    def close(self) -> None:
        if self._intruder is not None:
            self._intruder.set()
        self.watch.stop()

    def provision(self) -> None:
        self.joined = self.watch.provision()
        self.watch.start()

    def upload_program(self) -> None:
        time.sleep(3)  # a few beacons: the beds agree on a root and a clock
        status = self._status(1)
        lead_s = 6.0
        self.start_us = status["global_time_us"] + round(lead_s * 1e6)
        self.watch.request(1, "program_upload", program_wire.compile_program(self.program, 1, self.start_us))
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

    def _start(self) -> float:
        """The night's start on the host's clock (time.monotonic)."""
        assert self.start_host is not None, "upload_program() sets the night's start before the night runs"
        return self.start_host

    def run(self) -> None:
        from soma.sim.sleeper import Sleeper

        scale = NIGHT_S / (self.settings.night_minutes * 60.0)
        self.sanctuary.set_time_scale(pad_time_scale(self.settings.night_minutes))
        for index, bed in enumerate(self.sanctuary.beds):
            bed.world.put_sleeper(Sleeper(f"demo/{self.settings.seed}/{index}", night_s=NIGHT_S, time_scale=scale))
            bed.world.oracle.new_peak()  # the night's hottest pads (the bath held them at 42 degC)
        length = self.settings.night_minutes * 60.0
        start_host, inject = self._start(), self.settings.inject
        inject_at = start_host + length / 2 if inject else None
        end = start_host + length + 3
        while (now := time.monotonic()) < end:
            if inject and inject_at is not None and now >= inject_at and self.fault_at is None:
                self.fault_at = now
                self._inject(inject)
            if now >= start_host - 2:
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

    def _sample_grants(self) -> None:
        from soma.link.management import ManagementTimeout

        for number, track in zip(self._numbers(), self.watch.tracks, strict=True):
            try:
                grant = self._status(number, timeout=1.0)["grant_w"]
            except ManagementTimeout:
                continue  # a bed that just faulted or restarted: the next round
            track.grants.append((time.monotonic() - self._start(), grant))

    def _inject(self, fault: str) -> None:
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

    def _spoof(self, stop: threading.Event) -> None:
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
                "flags": int(enums.BeaconFlags.synced | enums.BeaconFlags.is_root),
                "root_id": 0,
                "root_seq": seq,
                "global_time_us": seq * 1_000_000,  # a clock of its own
                "tag": b"",
            }
            self.sanctuary.world.inject_radio(auth.signed_beacon(forged_key, **fields))

    def _status(self, number: int, timeout: float = 5.0) -> dict[str, Any]:
        """What bed `number` knows of the sanctuary (sanctuary_status fields)."""
        return self.watch.request_fields(number, "sanctuary_status", [0], timeout=timeout)

    def _roots(self, numbers: Collection[int]) -> set[int]:
        """The roots these beds follow."""
        return {self._status(n)["root_id"] for n in numbers}

    def _numbers(self) -> range:
        return range(1, self.settings.beds + 1)

    # ---- the figures

    def outcome(self) -> DemoOutcome:
        from soma.demo.night_report import BedRow, Event, NightReport, SummaryRow

        watch = self.watch
        start, length = self._start(), self.settings.night_minutes * 60.0
        end = start + length
        numbers = list(self._numbers())
        faulty = FAULT_BED if self.settings.inject in BED_FAULTS else None
        healthy = [n for n in numbers if n != faulty]
        if self.settings.inject == "root-loss":
            healthy = [n for n in numbers if n != 1]
        assert self.joined is not None, "provision() notes when the beds joined, before the night"
        sync_from = max(self.joined + 30, start)
        errors = watch.pairwise_errors_us(sync_from, end, step=0.2, numbers=healthy if len(healthy) > 1 else None)
        onsets = [at for n, at in zip(numbers, watch.onsets(start), strict=True) if n in healthy and at is not None]
        figures: dict[str, Any] = {
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
        checks = judge(figures, self.beds, self.settings.inject, healthy, self._fault_evidence(healthy))
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
            bed.ok = bed_ok(bed, self.settings.inject)
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
                breaches=breached_rules(b.safety),
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

    def _fault_events(self, start: float) -> list["Event"]:
        """When each bed's telemetry first showed a latched fault during the night."""
        from soma.demo.night_report import Event
        from soma.link.management import fault_names

        mask = TELEMETRY["fault_mask"]
        events: list[Event] = []
        for number, track in zip(self._numbers(), self.watch.tracks, strict=True):
            latched = [(at, values[mask]) for at, values in snapshot(track.frames) if at >= start and values[mask]]
            if latched:
                at, faults = latched[0]
                events.append(Event(at - start, f"bed {number}: {', '.join(fault_names(faults))}", "fault"))
        return events

    def _trace(self, track: "BedTrack", bed: BedOutcome) -> "BedTrace":
        from soma.demo.night_report import BedTrace

        trace = BedTrace(bed.number, bed.serial, [], [], [], [], [], [], [], [])
        sleeper = track.bed.world.sleeper
        start_host = self._start()
        for at, values in track.frames:
            if at < start_host - 5:
                continue
            t = at - start_host
            trace.times_s.append(t)
            trace.pad_c.append(values[TELEMETRY["pad_left_mc"]] / 1000)
            setpoint = values[TELEMETRY["setpoint_left_mc"]]
            trace.setpoint_c.append(setpoint / 1000 if setpoint else None)
            trace.light_permille.append(values[TELEMETRY[f"outputs_permille.{WAKE_LIGHT}"]])
            drive = abs(values[TELEMETRY["drive_left_permille"]]) + abs(values[TELEMETRY["drive_right_permille"]])
            trace.drawn_w.append(drive * constants.DRIVE_FULL_POWER_W / 1000)
            trace.sleep_state.append(_SLEEP_STATES.get(values[TELEMETRY["sleep_state"]], "unknown"))
            truth = sleeper.vitals(at - track.bed.world.sleeper_since) if sleeper is not None else None
            trace.truth_stage.append("empty" if truth is None or not truth.present else truth.stage)
        trace.grants = list(track.grants)  # (seconds since the night started, W)
        return trace

    def _fault_evidence(self, healthy: Sequence[int]) -> FaultEvidence:
        """What the night showed of the injected fault, for judging it."""
        inject = self.settings.inject
        evidence = FaultEvidence()
        if inject in BED_FAULTS:
            drive = TELEMETRY["drive_left_permille"]
            frames = snapshot(self.watch.tracks[FAULT_BED - 1].frames)[-5:]
            evidence.left_drive = [values[drive] for _, values in frames]
        if inject == "root-loss":
            assert self.fault_at is not None, "run() injects the fault half-way through the night"
            evidence.failover_s = self.watch.settled_after(self.fault_at, healthy, time.monotonic() - 1)
        if inject in ("root-loss", "spoofed-beacons"):
            evidence.roots = self._roots(healthy)
        return evidence


_SLEEP_STATES = {int(state): state.name for state in enums.SleepState}


def _percentile(values: Sequence[float], fraction: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * fraction))]


def _tracking_error(trace: "BedTrace", settled_within_c: float = 0.1) -> float | None:
    """The worst |pad - set point| after settling (SPEC §8): from when the pad first came
    within `settled_within_c` of a set point until the set point changed, over the night;
    None if no set point was ever reached."""
    worst: float | None = None
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
