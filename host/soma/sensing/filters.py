"""The bed sensor's filters, designed here offline and checked into firmware/board.py
(BCG_FILTERS: the sections' coefficients one after another, in SECTIONS' order).

Each is one biquad section (RBJ audio-EQ cookbook) in Q13 fixed point, as the firmware's
sensing pipeline runs it: y = (b0 x + b1 x1 + b2 x2 - a1 y1 - a2 y2) >> 13. The firmware's
integers must stay within the ESP32 port's small-int range (+-2^30), so `range_proof`
bounds every product and partial sum from the input's bound and the section's impulse
response (its l1 norm bounds the output for any input).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

Q = 13
SMALL_INT = 1 << 30


@dataclass(frozen=True)
class Section:
    name: str
    kind: str  # "bandpass" or "lowpass"
    rate_hz: float
    freq_hz: float
    q: float
    input_bound: int  # |x| never exceeds this (firmware units)

    def coefficients(self) -> tuple[int, ...]:
        """(b0, b1, b2, a1, a2) in Q13."""
        w0 = 2 * math.pi * self.freq_hz / self.rate_hz
        alpha = math.sin(w0) / (2 * self.q)
        cos = math.cos(w0)
        if self.kind == "bandpass":  # constant 0 dB peak gain
            b = (alpha, 0.0, -alpha)
        elif self.kind == "lowpass":
            b = ((1 - cos) / 2, 1 - cos, (1 - cos) / 2)
        else:
            raise ValueError(self.kind)
        a0 = 1 + alpha
        values = (*b, -2 * cos, 1 - alpha)
        return tuple(round(v / a0 * (1 << Q)) for v in values)


# Firmware units: the calibrated BCG sample in quarter codes, |x| < 2^14 (see firmware/sensing.py).
SECTIONS = (
    # The heartbeat band at 100 Hz: the J-wave complex, without breathing or drift.
    Section("heart band", "bandpass", 100.0, 7.0, 0.7, 1 << 14),
    # The envelope of that band (|y| summed over 4 samples, halved twice) at 25 Hz.
    Section("heart envelope", "lowpass", 25.0, 2.5, 0.707, 1 << 15),
    # Breathing at 10 Hz (a 10-sample sum scaled by 1/8): below 0.7 Hz, heartbeats out.
    Section("breathing band", "lowpass", 10.0, 0.7, 0.707, 5 << 12),
)


def impulse_response_l1(coefficients: Sequence[int], samples: int = 4000) -> float:
    """The l1 norm of the fixed-point section's impulse response (its worst-case gain)."""
    b0, b1, b2, a1, a2 = (c / (1 << Q) for c in coefficients)
    x1 = x2 = y1 = y2 = 0.0
    total = 0.0
    for n in range(samples):
        x = 1.0 if n == 0 else 0.0
        y = b0 * x + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
        x2, x1, y2, y1 = x1, x, y1, y
        total += abs(y)
    return total


def range_proof(section: Section) -> tuple[int, int]:
    """(output bound, largest partial sum): both must stay below the limits the firmware assumes."""
    coefficients = section.coefficients()
    output_bound = math.ceil(impulse_response_l1(coefficients) * section.input_bound) + 2  # +2: truncation
    bound = max(section.input_bound, output_bound)
    partial = sum(abs(c) for c in coefficients) * bound
    return output_bound, partial


def board_filters() -> tuple[int, ...]:
    """firmware/board.py's BCG_FILTERS."""
    return tuple(c for section in SECTIONS for c in section.coefficients())


if __name__ == "__main__":
    for section in SECTIONS:
        output_bound, partial = range_proof(section)
        print(f"{str(section.coefficients())[1:-1]},  # {section.name}: out <= {output_bound}, sums <= {partial}")
