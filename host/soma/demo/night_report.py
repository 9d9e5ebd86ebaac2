"""What the report of `soma demo` shows of one simulated night (NightReport and its rows);
soma.demo.report writes it as a picture and a page."""

from dataclasses import dataclass, field


@dataclass
class BedTrace:
    """What one bed reported during the night, telemetry frame by frame (10 Hz), plus its power grants."""

    number: int  # bed 1..N
    serial: str
    times_s: list  # seconds since the night started, one per telemetry sample
    pad_c: list  # left pad temperature, degC
    setpoint_c: list  # left pad set point, degC; None where the zone is off
    light_permille: list  # wake light output 0..1000
    drawn_w: list  # electrical power the bed draws (both zones), W
    sleep_state: list  # the firmware's per-epoch estimate: "unknown" | "awake" | "light" | "deep"
    truth_stage: list  # the simulated sleeper's stage: "empty" | "awake" | "light" | "deep"
    grants: list = field(default_factory=list)  # (t_s, grant_w) samples, sparser (~every 2-3 s)


@dataclass
class SummaryRow:
    """One line of the summary: a measure, its value, the bar it must meet, and whether it does."""

    label: str  # e.g. "sync error p99"
    value: str  # already formatted, e.g. "612 us"
    bar: str  # e.g. "<= 1000 us", or "" when there is no bar
    ok: bool  # False: the line is highlighted as failing


@dataclass
class BedRow:
    """One bed's results: calibration, bench check, the faults it reported, and the safety oracle's verdict."""

    number: int
    serial: str
    calibration_error_c: float | None  # worst error after calibration
    bench_verdict: str  # "pass" | "fail" | "skipped"
    faults: list  # fault names latched/reported during the night, [] if none
    ok: bool
    calibration_problem: str = ""  # why there is no calibration error, if there is none
    relay: str = ""  # the heater enable relay in its last telemetry: "open" | "closed" | "" (unknown)
    max_true_pad_c: float | None = None  # the hottest true pad the safety oracle saw (the night's), None: not watched
    breaches: dict = field(default_factory=dict)  # safety oracle rule -> breaches, the rules breached only


@dataclass
class Event:
    """Something that happened at one moment of the night, marked on every row of the picture."""

    t_s: float
    label: str  # e.g. "Wake-Dream Ushering", "fault injected: heater-stuck on bed 3"
    kind: str  # "ushering" | "fault" | "phase"


@dataclass
class NightReport:
    """Everything the report shows about one simulated night."""

    title: str  # e.g. "Soma Sanctuary: 8 beds, a night in 3 minutes"
    budget_w: float  # the Equal Rest budget
    beds: list  # BedTrace per bed
    bed_rows: list  # BedRow per bed
    summary: list  # SummaryRow
    events: list  # Event
    injected: str | None  # the fault name injected, or None
    verdict_ok: bool  # overall
    injected_note: str = ""  # what the fault is and what must happen

    @property
    def verdict(self) -> str:
        """The overall verdict as the picture and the page print it."""
        return "PASSED" if self.verdict_ok else "FAILED"
