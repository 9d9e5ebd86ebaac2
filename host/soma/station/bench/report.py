"""The bench's results: each measurement against its limits, each step's verdict, the whole
run's report, written as JUnit XML and as JSON."""

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

from soma.files import write_atomically


@dataclass
class Measurement:
    name: str
    value: float
    low: float | None = None
    high: float | None = None

    @property
    def limited(self) -> bool:
        return self.low is not None or self.high is not None

    @property
    def passed(self) -> bool:
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
    def passed(self) -> bool:
        return not self.error and all(m.passed for m in self.measurements if m.limited)

    @property
    def message(self) -> str:
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
    # The unit's key when the bench began and when it ended ("none", "sanctuary key", or
    # "bench test key" when --test-key put the public one in): what the operator must know.
    key_arrived: str = ""
    key_left: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(step.passed for step in self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "plan_version": self.plan_version,
            "serial": self.serial,
            "firmware_hash": self.firmware_hash,
            "passed": self.passed,
            "started": self.started,
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
            "key": {"arrived": self.key_arrived, "left": self.key_left},
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


def _line(measurement: Measurement) -> str:
    """One measurement as a line of text: name = value  (limits low..high)."""
    text = f"{measurement.name} = {measurement.value:g}"
    if measurement.limited:
        low, high = ("" if bound is None else f"{bound:g}" for bound in (measurement.low, measurement.high))
        text += f"  (limits {low}..{high}) {'ok' if measurement.passed else 'OUT'}"
    return text


def _describe(measurement: Measurement) -> str:
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


def write_reports(
    report: BenchReport,
    junit_file: str | os.PathLike[str] | None = None,
    report_file: str | os.PathLike[str] | None = None,
    station_name: str = "",
) -> None:
    """The run as JUnit XML and/or its JSON report, each file written whole or not at all."""
    import json

    for path, text in (
        (junit_file, lambda: junit_xml(report, station_name)),
        (report_file, lambda: json.dumps(report.as_dict(), indent=2) + "\n"),
    ):
        if path:
            data = text().encode("utf-8")
            write_atomically(path, lambda f, data=data: f.write(data), "report")


def junit_xml(report: BenchReport, station_name: str = "") -> str:
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
