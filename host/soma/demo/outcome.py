"""What `soma demo` yields: each bed's outcome through the stages and the night, and the demo's as a whole."""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from soma.demo.night_report import NightReport


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
    report: "NightReport | None" = None
    paths: tuple = ()
    stage_seconds: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(ok for _, _, _, ok in self.checks) and all(bed.ok for bed in self.beds)
