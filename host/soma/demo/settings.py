"""What `soma demo` is asked to do: its settings and the faults it can inject, and into which bed."""

from dataclasses import dataclass
from pathlib import Path

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
FAULT_BED = 2


@dataclass
class DemoSettings:
    beds: int = 8
    night_minutes: float = 2.0
    inject: str | None = None
    out_dir: Path = Path("demo-results")
    seed: int = 1
