"""The production line behind `soma station`: flash -> calibrate -> bench -> provision for
one unit or many at once, every stage recorded (Records.stage), one verdict per unit.

The bench runs in two parts around provisioning: the steps that need no key first; if
they pass, the unit is provisioned, then its radio is tested with the sanctuary's own key
(the operator's key, not the public test key). A unit that fails the bench never holds
the sanctuary key, and one that passes leaves holding it, as the operator expects.

Resumable: a stage is skipped when the records say the unit passed it and that is still
true on the unit (its firmware, its calibration's generation, its key, sanctuary and bed,
the plan), and nothing it rests on was done again after it, unless --redo names the stage.
"""

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from soma.errors import EXIT_USAGE, SomaError, expected, one_line

if TYPE_CHECKING:
    from soma.link.session import Unit, UnitInfo
    from soma.station.bench.plan import Plan
    from soma.station.bench.report import BenchReport
    from soma.station.calibration import CalibrationProgress
    from soma.station.flashing import FlashResult, Image, Progress
    from soma.station.traceability import Records, RunRow, Stage

STAGES = ("flash", "calibrate", "bench", "provision")  # the records' stage names, in the line's order
# The bench's kinds that need the unit's sanctuary key: run once it is provisioned.
KEYED_KINDS = ("radio_loopback",)
WAITING, RUNNING, PASSED, SKIPPED, FAILED = "waiting", "running", "passed", "skipped", "failed"
NOT_REACHED = "not reached"
ROLLED_BACK = "the new firmware did not confirm itself: the unit went back to its previous firmware"
# The bars a calibration must meet after its commit (soma calibrate's defaults).
MAX_ERROR_AFTER_C = 0.1
MAX_BCG_ERROR_PCT = 2.0
FLASH_PROGRESS_STEP = 25  # percent: how finely a flash's progress is told


@dataclass
class StageOutcome:
    state: str = WAITING
    detail: str = ""  # while running: how far; skipped: why; failed: the reason, one line
    seconds: float = 0.0


@dataclass
class UnitRun:
    """One unit's way down the line."""

    port: str
    bed_id: int
    serial: str = ""
    firmware_hash: str = ""
    stages: dict[str, StageOutcome] = field(default_factory=lambda: {stage: StageOutcome() for stage in STAGES})
    calibration: str = ""  # "generation 3, max error 0.012 degC"
    bench: str = ""  # "SB-1 production bench v1 pass"
    exit_code: int = 0  # of the failure that stopped it (0: none)
    error: str = ""  # the error that stopped it (a failed check has none: its stage's detail says why)

    @property
    def failed_stage(self) -> str | None:
        return next((stage for stage, outcome in self.stages.items() if outcome.state == FAILED), None)

    @property
    def passed(self) -> bool:
        return all(outcome.state in (PASSED, SKIPPED) for outcome in self.stages.values())

    @property
    def verdict(self) -> str:
        failed = self.failed_stage
        if failed is None:
            return "PASSED" if self.passed else "unfinished"
        return f"FAILED at {failed}: {self.stages[failed].detail}"

    def label(self, sanctuary_id: int) -> str:
        """What the label printer prints for a unit that passed."""
        return (
            f"{self.serial}  firmware {self.firmware_hash}  calibration {self.calibration}  bench {self.bench}"
            f"  sanctuary {sanctuary_id} bed {self.bed_id}"
        )


# report(unit, stage): a stage of a unit changed (its state or its detail).
Report = Callable[[UnitRun, str], object]


class Placement(Protocol):
    """Moves units between the rack, the bath and the fixture."""

    def bath(self, units: Sequence[UnitRun], inside: bool) -> None: ...

    def fixture(self, unit: UnitRun, inside: bool) -> None: ...


class OperatorPlacement:
    """The operator moves the units, asked by `ask(instruction)`, which returns once done."""

    def __init__(self, ask: Callable[[str], object]) -> None:
        self._ask = ask

    def bath(self, units: Sequence[UnitRun], inside: bool) -> None:
        where = "into the calibration bath" if inside else "out of the bath, onto the rack"
        self._ask(f"put the units on {', '.join(unit.port for unit in units)} {where}")

    def fixture(self, unit: UnitRun, inside: bool) -> None:
        where = "into the bench fixture" if inside else "out of the bench fixture, onto the rack"
        self._ask(f"put the unit on {unit.port} ({unit.serial}) {where}")


class SimPlacement:
    """The beds of a running `soma sim`, moved through its control socket."""

    def __init__(self, control: str, beds: dict[str, int]) -> None:
        self._control = control
        self._beds = beds  # port -> bed number

    @classmethod
    def find(cls, control: str, ports: Sequence[str]) -> "SimPlacement | None":
        """The placement of a simulator on `control` whose beds are these ports, or None if
        no simulator answers there; a SomaError if it does but some ports are not its beds."""
        from soma.sim.control import call

        try:
            beds = call(control, {"op": "status"})["ok"]["beds"]
        except (OSError, KeyError, ValueError, TypeError):
            return None
        numbers = {bed["port"]: number for number, bed in enumerate(beds, 1)}
        strangers = [port for port in ports if port not in numbers]
        if strangers:
            raise SomaError(
                f"{', '.join(strangers)}: not a bed of the simulator on {control}: give its beds' ports "
                "(`soma sim status`), or --control to name another simulator"
            )
        return cls(control, {port: numbers[port] for port in ports})

    def bath(self, units: Sequence[UnitRun], inside: bool) -> None:
        self._tell("bath", [self._beds[unit.port] for unit in units], inside)

    def fixture(self, unit: UnitRun, inside: bool) -> None:
        self._tell("fixture", [self._beds[unit.port]], inside)

    def _tell(self, op: str, beds: list[int], inside: bool) -> None:
        from soma.sim.control import call

        try:
            answer = call(self._control, {"op": op, "beds": beds, "inside": inside})
        except OSError as exc:
            raise SomaError(f"the simulator on {self._control} stopped answering ({one_line(exc)})") from None
        if "error" in answer:
            raise SomaError(f"the simulator on {self._control}: {answer['error']}")


class FixtureTurn:
    """One unit's use of the shared fixture: taken before a step that needs it (waiting for
    the unit before to give it back), given back before a step that does not; ask() in between."""

    def __init__(self, fixture: "SharedFixture", unit: UnitRun) -> None:
        self._fixture, self._unit = fixture, unit
        self.held = False

    def take(self) -> None:
        if not self.held:
            self._fixture.lock.acquire()
            self.held = True
            self._fixture.placement.fixture(self._unit, True)

    def give_back(self) -> None:
        if self.held:
            try:
                self._fixture.placement.fixture(self._unit, False)
            finally:
                self.held = False
                self._fixture.lock.release()

    def ask(self, command: str) -> str:
        if not self.held:
            raise SomaError(f"{self._unit.port}: asked the fixture {command!r} without holding it")
        return self._fixture.bath.ask(command)


class SharedFixture:
    def __init__(self, bath: Any, placement: Placement) -> None:  # bath: a calibration.Bath on the fixture's line
        self.bath, self.placement = bath, placement
        self.lock = threading.Lock()


@dataclass
class LineSettings:
    ports: Sequence[str]
    bath_port: str
    fixture_port: str
    plan: "Plan"
    key: bytes
    key_file: str
    sanctuary_id: int
    first_bed: int
    redo: frozenset[str]
    station: str
    operator: str
    baud: int = 115200


class Line:
    def __init__(
        self, settings: LineSettings, image: "Image", records: "Records", placement: Placement, report: Report
    ) -> None:
        self.settings, self.image, self.records, self.placement = settings, image, records, placement
        self._report = report
        self.key_id = hashlib.sha256(settings.key).digest()[:4].hex()  # what the unit answers provision_key with
        self.units = [UnitRun(port, settings.first_bed + index) for index, port in enumerate(settings.ports)]

    def run(self) -> list[UnitRun]:
        """Every unit down the line; their outcomes (also in self.units)."""
        self._each(self._flash, self.units)
        self._calibrate([unit for unit in self.units if not unit.failed_stage])
        self._bench_and_provision([unit for unit in self.units if not unit.failed_stage])
        for unit in self.units:
            for stage, outcome in unit.stages.items():
                if outcome.state == WAITING:
                    outcome.state = NOT_REACHED
                    self._report(unit, stage)
        return self.units

    # ---- the stages
    def _flash(self, unit: UnitRun) -> None:
        from soma.link.session import open_unit

        with (
            self._stage(unit, "flash") as outcome,
            self.records.stage("flash", "failed", self.settings.station, self.settings.operator) as stage,
            open_unit(unit.port, self.settings.baud, firmware=False) as session,
        ):
            stage.met(session.info)
            if session.info is not None:
                unit.serial, unit.firmware_hash = session.info.serial, session.info.firmware_hash
                why = self._flash_still_true(session.info)
                if why:
                    self._skip(unit, "flash", why)
                    return
            result = flash_recorded(session, stage, self.image, self._flash_progress(unit, outcome))
            unit.serial, unit.firmware_hash = result.serial, result.firmware_hash
            if result.status == "rolled_back":
                self._fail(unit, "flash", rollback_reason(result))
            else:
                self._pass(unit, "flash", result.status)

    def _calibrate(self, units: list[UnitRun]) -> None:
        """Every unit that needs it in the bath at once; the others skip."""
        from soma.link.session import open_unit

        due: list[UnitRun] = []
        for unit in units:
            with self._stage(unit, "calibrate"), open_unit(unit.port, self.settings.baud) as session:
                why = self._calibration_still_true(unit, session.client)
                if why:
                    self._skip(unit, "calibrate", why)
                else:
                    due.append(unit)
        if not due:
            return
        with ExitStack() as sessions:
            opened: list[tuple[UnitRun, Unit]] = []
            for unit in due:
                with self._stage(unit, "calibrate"):
                    opened.append((unit, sessions.enter_context(open_unit(unit.port, self.settings.baud))))
            if opened:
                self._calibrate_in_bath(opened)

    def _calibrate_in_bath(self, opened: list[tuple[UnitRun, "Unit"]]) -> None:
        from soma.link.serial_link import SerialLink
        from soma.station.calibration import Bath, CalibrationReport, calibrate_units

        units = [unit for unit, _ in opened]
        results: list[CalibrationReport | SomaError]
        try:
            for unit in units:
                self._detail(unit, "calibrate", "into the bath")
            self.placement.bath(units, True)
            try:
                with SerialLink(self.settings.bath_port, 9600) as bath_link:
                    for unit in units:
                        self._detail(unit, "calibrate", "in the bath")
                    clients = [session.client for _, session in opened]
                    progress = self._calibration_progress(units)
                    results = calibrate_units(
                        clients, Bath(bath_link), station=self.settings.station, progress=progress
                    )
            finally:
                self.placement.bath(units, False)
        except Exception as exc:  # the bath, or moving the units: every unit's calibration failed
            problem = expected(exc, self.settings.bath_port)
            if problem is None:
                raise
            results = [problem] * len(units)
        for (unit, session), result in zip(opened, results, strict=True):
            with (
                self._stage(unit, "calibrate"),
                self.records.stage("calibrate", "refused", self.settings.station, self.settings.operator) as stage,
            ):
                stage.met(session.info)
                if isinstance(result, SomaError):
                    raise result
                passed = result.max_error_after_c <= MAX_ERROR_AFTER_C and (
                    abs(result.bcg_error_after_pct) <= MAX_BCG_ERROR_PCT
                )
                reason = "" if passed else f"an error after calibration is over its bar ({calibration_bars()})"
                stage.done("pass" if passed else "fail", result.firmware_hash, result.__dict__, reason=reason)
                unit.calibration = calibration_summary(result.generation, result.max_error_after_c)
                if passed:
                    self._pass(unit, "calibrate", unit.calibration)
                else:
                    self._fail(unit, "calibrate", reason)

    def _bench_and_provision(self, units: list[UnitRun]) -> None:
        from soma.link.serial_link import SerialLink
        from soma.station.calibration import Bath

        if not units:
            return
        with ExitStack() as instruments:
            fixture = None
            if self.settings.plan.needs_fixture:
                try:
                    link = instruments.enter_context(SerialLink(self.settings.fixture_port, 9600))
                except Exception as exc:  # no fixture: no unit can be benched
                    for unit in units:
                        with self._stage(unit, "bench"):
                            raise exc
                    return
                fixture = SharedFixture(Bath(link), self.placement)

            def one(unit: UnitRun) -> None:
                self._bench(unit, fixture)  # provisions the unit between its two parts
                if unit.stages["provision"].state == WAITING and not unit.failed_stage:
                    self._provision(unit)

            self._each(one, units)

    def _bench(self, unit: UnitRun, fixture: SharedFixture | None) -> None:
        """The plan's steps that need no key on the unprovisioned unit; if they pass, the
        provision stage; then the steps that need the sanctuary key (the radio). One bench
        run, recorded once."""
        from soma.link.session import open_unit

        plan = self.settings.plan
        keyed = [step.id for step in plan.steps if step.kind in KEYED_KINDS]
        with (
            self._stage(unit, "bench"),
            self.records.stage("bench", "aborted", self.settings.station, self.settings.operator, plan.scope) as stage,
        ):
            with open_unit(unit.port, self.settings.baud) as session:
                stage.met(session.info)
                assert session.info is not None, "open_unit with firmware: the unit answered info"
                why = self._bench_still_true(unit, session.info)
                if why:
                    self._skip(unit, "bench", why)
                    return
                before = [step.id for step in plan.steps if step.id not in keyed]
                report = self._run_steps(unit, session, plan.only(before) if keyed else plan, fixture)
            if report.passed and keyed:
                self._detail(unit, "bench", f"{', '.join(keyed)}: once provisioned")
                self._provision(unit)
                if unit.failed_stage:  # the provision stage's failure is the unit's verdict
                    why = f"not provisioned: {', '.join(keyed)} not tested"
                    stage.done("aborted", report.firmware_hash, report.as_dict(), reason=why)
                    self._end(unit, "bench", NOT_REACHED, why)
                    return
                with open_unit(unit.port, self.settings.baud) as session:
                    after = self._run_steps(unit, session, plan.only(keyed), fixture)
                report.steps += after.steps
                report.notes += after.notes
                report.seconds += after.seconds
            failed = [result.id for result in report.steps if not result.passed]
            reason = f"failed: {', '.join(failed)}" if failed else ""
            stage.done("pass" if report.passed else "fail", report.firmware_hash, report.as_dict(), reason=reason)
            unit.bench = f"{plan.name} v{plan.version} {'pass' if report.passed else 'fail'}"
            if report.passed:
                self._pass(unit, "bench", unit.bench)
            else:
                self._fail(unit, "bench", reason)

    def _run_steps(self, unit: UnitRun, session: "Unit", plan: "Plan", fixture: SharedFixture | None) -> "BenchReport":
        """Run `plan` on the unit, taking the fixture for the steps that need it."""
        from soma.station.bench.kinds import KINDS, Station
        from soma.station.bench.run import run_plan

        turn = FixtureTurn(fixture, unit) if fixture else None

        def step(index: int, total: int, step_id: str) -> None:
            if turn is not None:
                if KINDS[plan.steps[index].kind].needs_fixture:
                    if not turn.held:
                        self._detail(unit, "bench", f"{step_id}: waiting for the fixture")
                    turn.take()
                else:
                    turn.give_back()
            self._detail(unit, "bench", f"{step_id}")

        try:
            return run_plan(plan, Station(session.client, turn, self.settings.key), progress=step)
        finally:
            if turn is not None:
                turn.give_back()

    def _provision(self, unit: UnitRun) -> None:
        from soma.link.session import open_unit

        settings = self.settings
        with (
            self._stage(unit, "provision"),
            self.records.stage("provision", "refused", settings.station, settings.operator) as stage,
            open_unit(unit.port, settings.baud) as session,
        ):
            stage.met(session.info)
            assert session.info is not None, "open_unit with firmware: the unit answered info"
            why = self._provision_still_true(unit, session.info)
            if why:
                self._skip(unit, "provision", why)
                return
            again = (
                f"soma provision --port {unit.port} --sanctuary {settings.sanctuary_id} --bed {unit.bed_id}"
                f" --key {settings.key_file}"
            )
            key_id = provision_recorded(session, stage, settings.sanctuary_id, unit.bed_id, settings.key, again)
            self._pass(unit, "provision", f"sanctuary {settings.sanctuary_id} bed {unit.bed_id} key id {key_id}")

    # ---- what still holds (None: do the stage; otherwise why it is skipped)
    def _flash_still_true(self, info: "UnitInfo") -> str | None:
        from soma_protocol.enums import BootState

        run = self._latest(info.serial, "flash")
        confirmed = info.boot_state == BootState.confirmed and info.firmware_hash == self.image.firmware_hash
        if run is None or not confirmed or run["firmware_hash"] != self.image.firmware_hash:
            return None
        return f"passed before (run {run['id']}): firmware {info.firmware_hash} runs, confirmed"

    def _latest(self, serial: str, stage: str) -> "RunRow | None":
        """The run that stands for `stage` of the unit if it passed (and --redo does not name it)."""
        if stage in self.settings.redo:
            return None
        run = self.records.latest(serial)[stage]
        return run if run is not None and run["status"] == "ok" else None

    def _calibration_still_true(self, unit: UnitRun, client: Any) -> str | None:
        from soma_protocol import codec

        run = self._latest(unit.serial, "calibrate")
        if run is None:
            return None
        stored = codec.nest("calibration_read_response", client.request("calibration_read", timeout=5))
        if (stored["state"], stored["generation"]) != (1, run["details"].get("generation")):
            return None
        unit.calibration = calibration_summary(stored["generation"], _max_error_after(run["details"]))
        return f"passed before (run {run['id']}): calibration generation {stored['generation']} still on the unit"

    def _bench_still_true(self, unit: UnitRun, info: "UnitInfo") -> str | None:
        run, latest = self._latest(unit.serial, "bench"), self.records.latest(unit.serial)
        plan = self.settings.plan
        if run is None or run["scope"] != "full":
            return None
        before = [latest[stage] for stage in ("calibrate", "provision")]
        if any(earlier is None or run["id"] < earlier["id"] for earlier in before):
            return None  # benched before its calibration or its key
        if (run["details"].get("plan"), run["details"].get("plan_version")) != (plan.name, plan.version):
            return None
        if run["firmware_hash"] != info.firmware_hash:
            return None
        unit.bench = f"{plan.name} v{plan.version} pass"
        return f"passed before (run {run['id']}): {plan.name} v{plan.version}, firmware {info.firmware_hash}"

    def _provision_still_true(self, unit: UnitRun, info: "UnitInfo") -> str | None:
        from soma.station.bench.kinds import KEY_MISSING

        run = self._latest(unit.serial, "provision")
        if run is None or info["record_flags"] & KEY_MISSING:
            return None
        wanted = {"sanctuary_id": self.settings.sanctuary_id, "bed_id": unit.bed_id, "key_id": self.key_id}
        if {name: run["details"].get(name) for name in wanted} != wanted:
            return None
        if (info["sanctuary_id"], info["bed_id"]) != (wanted["sanctuary_id"], wanted["bed_id"]):
            return None
        return f"passed before (run {run['id']}): sanctuary {info['sanctuary_id']} bed {info['bed_id']}, same key"

    # ---- the outcomes
    @contextmanager
    def _stage(self, unit: UnitRun, stage: str) -> Iterator[StageOutcome]:
        """The block does (part of) `stage` of `unit`: running while in it; an expected
        failure leaving it is the stage's failure (a bug goes on)."""
        outcome = unit.stages[stage]
        if outcome.state == WAITING:
            outcome.state = RUNNING
            outcome.seconds = -time.monotonic()  # the stage's start, until it ends
            self._report(unit, stage)
        try:
            yield outcome
        except Exception as exc:
            problem = expected(exc, unit.port)
            if problem is None:
                raise
            unit.exit_code, unit.error = problem.exit_code, str(problem)
            self._fail(unit, stage, one_line(problem))

    def _end(self, unit: UnitRun, stage: str, state: str, detail: str) -> None:
        outcome = unit.stages[stage]
        outcome.state, outcome.detail = state, detail
        if outcome.seconds < 0:
            outcome.seconds = round(time.monotonic() + outcome.seconds, 1)
        self._report(unit, stage)

    def _pass(self, unit: UnitRun, stage: str, detail: str) -> None:
        self._end(unit, stage, PASSED, detail)

    def _skip(self, unit: UnitRun, stage: str, why: str) -> None:
        self._end(unit, stage, SKIPPED, why)

    def _fail(self, unit: UnitRun, stage: str, why: str) -> None:
        unit.exit_code = unit.exit_code or 1
        self._end(unit, stage, FAILED, why)

    def _detail(self, unit: UnitRun, stage: str, detail: str) -> None:
        unit.stages[stage].detail = detail
        self._report(unit, stage)

    def _flash_progress(self, unit: UnitRun, outcome: StageOutcome) -> "Progress":
        def progress(done: int, total: int, what: str) -> None:
            percent = done * 100 // total // FLASH_PROGRESS_STEP * FLASH_PROGRESS_STEP if total else 0
            shown = f"sent {percent}%"
            if outcome.detail != shown:
                self._detail(unit, "flash", shown)

        return progress

    def _calibration_progress(self, units: Sequence[UnitRun]) -> "Callable[[CalibrationProgress], None]":
        """Each unit's calibration step as its stage's detail: the sweep, the phase and the point."""
        by_serial = {unit.serial: unit for unit in units}

        def progress(event: "CalibrationProgress") -> None:
            unit = by_serial.get(event.serial)
            if unit is None:
                return
            where = f" point {event.point}/{event.points}" if event.point else ""
            target = f" at {event.target_c:g} degC" if event.point and event.target_c is not None else ""
            shown = f"{event.sweep}: {event.phase}{where}{target}"
            if unit.stages["calibrate"].detail != shown:
                self._detail(unit, "calibrate", shown)

        return progress

    def _each(self, work: Callable[[UnitRun], None], units: Sequence[UnitRun]) -> None:
        """`work` on every unit, each in its own thread; a bug in one is raised once all are done."""
        from concurrent.futures import ThreadPoolExecutor

        if units:
            with ThreadPoolExecutor(max_workers=len(units)) as pool:
                for _ in pool.map(work, units):
                    pass


def flash_recorded(
    session: "Unit", stage: "Stage", image: "Image", progress: "Progress | None" = None
) -> "FlashResult":
    """Flash `image` onto the unit of `session`, recorded as `stage` (met already): started
    at the first write, done with its outcome (a rollback with the failed boot's last line)."""
    from soma.station.flashing import flash

    result = flash(session, image, progress=progress, on_first_write=partial(stage.start, image.firmware_hash))
    reason = rollback_reason(result) if result.status == "rolled_back" else ""
    stage.done(result.status, result.firmware_hash, result.__dict__, serial=result.serial, reason=reason)
    return result


def rollback_reason(result: "FlashResult") -> str:
    """Why a flash rolled back: the last line its failed boot printed (the error), if any."""
    return ": ".join([ROLLED_BACK, *result.boot_output.strip().splitlines()[-1:]])


def provision_recorded(session: "Unit", stage: "Stage", sanctuary_id: int, bed_id: int, key: bytes, again: str) -> str:
    """Give the unit its sanctuary key and bed id, recorded as `stage`; the key's id (hex).
    A power cut in the commit says to run `again` (a command line)."""
    from soma.station.commit import committing

    with committing(session.client, "sanctuary key", again):
        key_id = session.client.provision(sanctuary_id, bed_id, key).hex()
    stage.done("provisioned", details={"sanctuary_id": sanctuary_id, "bed_id": bed_id, "key_id": key_id})
    return key_id


def calibration_bars() -> str:
    return f"{MAX_ERROR_AFTER_C} degC, BCG {MAX_BCG_ERROR_PCT} %"


def calibration_summary(generation: int, max_error_c: float) -> str:
    return f"generation {generation}, max error {max_error_c:.3f} degC"


def _max_error_after(details: dict[str, Any]) -> float:
    after = details.get("after_c") or []
    return max((abs(error) for point in after for error in point.values()), default=float("nan"))


def exit_status(units: Sequence[UnitRun]) -> int:
    """0: every unit passed; one unit whose failure was a usage or connection error: that (2);
    otherwise 1 if any failed."""
    if all(unit.passed for unit in units):
        return 0
    if len(units) == 1 and units[0].exit_code == EXIT_USAGE:
        return EXIT_USAGE
    return 1


def junit_xml(units: Sequence[UnitRun], station: str, sanctuary_id: int) -> str:
    """The run as JUnit XML: a testsuite per unit, a testcase per stage (skipped: passed
    before, or not reached)."""
    from xml.etree import ElementTree as ET

    root = ET.Element("testsuites", name="soma station")
    for unit in units:
        outcomes = unit.stages.values()
        suite = ET.SubElement(
            root,
            "testsuite",
            name=unit.serial or unit.port,
            tests=str(len(unit.stages)),
            failures=str(sum(outcome.state == FAILED for outcome in outcomes)),
            errors="0",
            skipped=str(sum(outcome.state in (SKIPPED, NOT_REACHED) for outcome in outcomes)),
            time=f"{sum(max(0.0, outcome.seconds) for outcome in outcomes):.1f}",
            hostname=station,
        )
        properties = ET.SubElement(suite, "properties")
        shown = {"port": unit.port, "serial": unit.serial, "firmware_hash": unit.firmware_hash, "bed_id": unit.bed_id}
        for name, value in {**shown, "sanctuary_id": sanctuary_id, "verdict": unit.verdict}.items():
            ET.SubElement(properties, "property", name=name, value=str(value))
        for stage, outcome in unit.stages.items():
            case = ET.SubElement(suite, "testcase", classname=f"station.{unit.serial or unit.port}", name=stage)
            case.set("time", f"{max(0.0, outcome.seconds):.1f}")
            if outcome.state == FAILED:
                ET.SubElement(case, "failure", message=outcome.detail, type="StageFailed")
            elif outcome.state == SKIPPED:
                ET.SubElement(case, "skipped", message=outcome.detail)
            elif outcome.state != PASSED:
                ET.SubElement(case, "skipped", message=f"{outcome.state}: an earlier stage failed")
            elif outcome.detail:
                ET.SubElement(case, "system-out").text = outcome.detail
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
