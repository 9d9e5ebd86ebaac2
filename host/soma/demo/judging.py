"""Judging a demo night: the bars (SPEC §8), every figure and the injected fault's behaviour
against its bar, each bed's verdict, and the summary as lines of text."""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from soma.demo.outcome import BedOutcome, DemoOutcome
from soma.demo.settings import BED_FAULTS, FAULT_BED

Check = tuple[str, str, str, bool]  # (label, value text, bar text, ok)

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
class FaultEvidence:
    """What the night showed of the injected fault, beyond the figures."""

    left_drive: list[int] | None = None  # a bed fault: the faulty bed's left drive in its last telemetry frames
    failover_s: float | None = None  # root-loss: seconds until the others settled on a new root (None: never)
    roots: set[int] | None = None  # root-loss, spoofed-beacons: the roots the healthy beds follow in the end


def judge(
    figures: dict[str, Any],
    beds: Sequence[BedOutcome],
    inject: str | None,
    healthy: Collection[int],
    evidence: FaultEvidence,
) -> list[Check]:
    """Every figure and what the injected fault must have done, against its bar: a list of
    (label, value text, bar text, ok). `beds`: BedOutcome; `healthy`: the numbers of the
    beds that must carry on."""
    checks: list[Check] = []

    def check(label: str, value: float | None, bar_value: float, unit: str, fmt: str = "{:.0f}") -> None:
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
    if inject == "spoofed-beacons":
        checks.append(("forged beacons rejected", f"{rejected}", "> 0, root unchanged", rejected > 0))
    else:
        checks.append(("beacons rejected", f"{rejected}", "0", rejected == 0))
    checks += _fault_checks(beds, inject, healthy, evidence)
    checks.append(_safety_check(beds))
    return checks


def _safety_check(beds: Sequence[BedOutcome]) -> Check:
    """The safety oracles' verdict on the whole run, every bed (SPEC §8: 0 breaches)."""
    breaches = sum(bed.safety["breaches"] for bed in beds)
    if breaches:
        first = [f"bed {bed.number}: {rule}" for bed in beds for _, rule, _ in bed.safety["first"]]
        value = f"{breaches}: {', '.join(first)}"
    else:
        value = f"0 over {sum(bed.safety['observations'] for bed in beds)} observations"
    return ("safety oracle breaches", value, str(BARS["safety_breaches"]), breaches <= BARS["safety_breaches"])


def _fault_checks(
    beds: Sequence[BedOutcome], inject: str | None, healthy: Collection[int], evidence: FaultEvidence
) -> list[Check]:
    """What the injected fault must have done, and that the others saw no fault."""
    checks: list[Check] = []
    others = [b for b in beds if b.number in healthy]
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
        faults = beds[FAULT_BED - 1].faults
        hit = sorted(set(faults) & BED_FAULTS[inject])
        last = evidence.left_drive
        left_off = bool(last) and not any(last)
        drive_text = "unknown (no telemetry)" if not last else "off" if left_off else "on"
        value = f"{', '.join(faults) or 'no fault'}; left drive {drive_text}"
        checks.append(
            (f"bed {FAULT_BED} faulted safe", value, "a latched fault, left drive off", bool(hit) and left_off)
        )
    if inject == "heater-stuck":  # the H-bridge heats whatever its drive: only the relay stops it
        bed = beds[FAULT_BED - 1]
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
        failover, roots = evidence.failover_s, evidence.roots
        if failover is None:
            value = "never"
        else:
            assert roots is not None, "the night gives the roots the healthy beds follow after a root-loss"
            value = f"{failover:.1f} s, root {sorted(roots)}"
        checks.append(
            (
                "root failover",
                value,
                f"<= {BARS['failover_s']:g} s",
                failover is not None and failover <= BARS["failover_s"],
            )
        )
    if inject == "spoofed-beacons":
        roots = evidence.roots
        assert roots is not None, "the night gives the roots the healthy beds follow after spoofed beacons"
        checks.append(("root after forgeries", str(sorted(roots)), "[1]", roots == {1}))
    return checks


def bed_ok(bed: BedOutcome, inject: str | None) -> bool:
    """Calibrated within the bar, bench passed, no fault but the one injected, no safety breach."""
    expected_fault = inject in BED_FAULTS and bed.number == FAULT_BED
    calibrated = bed.calibration_error_c is not None and bed.calibration_error_c <= BARS["calibration_c"]
    safe = not bed.safety["breaches"]
    return calibrated and bed.bench_verdict == "pass" and (expected_fault or not bed.faults) and safe


def breached_rules(safety: dict[str, Any]) -> dict[str, int]:
    """rule -> breaches, for the rules a safety oracle's summary saw breached."""
    return {rule: count for rule, count in safety["counts"].items() if count}


def summary_lines(outcome: DemoOutcome) -> list[tuple[str, bool]]:
    """The summary as (text, ok) lines: every bed, then every figure against its bar."""
    lines: list[tuple[str, bool]] = []
    for bed in outcome.beds:
        if bed.calibration_error_c is None:
            calibration = f"refused ({bed.calibration_problem})" if bed.calibration_problem else "-"
        else:
            calibration = f"{bed.calibration_error_c:.3f} degC"
        bench = bed.bench_verdict + (f" ({', '.join(bed.bench_failures)})" if bed.bench_failures else "")
        faults = ", ".join(bed.faults) or "none"
        text = f"bed {bed.number} {bed.serial}: calibration {calibration}, bench {bench}, faults {faults}"
        if bed.safety:
            breaches = ", ".join(f"{rule} {n}" for rule, n in breached_rules(bed.safety).items()) or "0 breaches"
            text += f", relay {bed.relay or 'unknown'}, true pad max {bed.safety['max_pad_c']:.1f} degC"
            text += f", safety oracle: {breaches}"
        lines.append((text, bed.ok))
    for label, value, bar, ok in outcome.checks:
        lines.append((f"{label}: {value} (bar {bar})", ok))
    return lines
