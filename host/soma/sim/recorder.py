"""A virtual bed's raw bed-sensor samples, as the firmware reads them, into a CSV file that
`soma replay` takes: time_s and bcg, then the sleeper's ground truth (present, moving,
heart_bpm, breaths_per_min, stage) for plots and checks. Written to FILE.partial and
renamed when complete, so a recording is whole or absent."""

import os
from pathlib import Path

from soma.sim.sleeper import Vitals

HEADER = "time_s,bcg,present,moving,heart_bpm,breaths_per_min,stage\n"


class BcgRecorder:
    def __init__(self, path: str | os.PathLike[str], seconds: float) -> None:
        self.path = Path(path)
        self.seconds = seconds
        self._partial = self.path.with_name(self.path.name + ".partial")
        self._file = self._partial.open("w")  # OSError: the caller says where and why
        self._file.write(HEADER)
        self._started: float | None = None

    def add(self, real_s: float, code: int, vitals: Vitals | None) -> bool:
        """One sample at the world's real time; False once the recording is complete."""
        if self._started is None:
            self._started = real_s
        t = real_s - self._started
        if t > self.seconds:
            self.finish()
            return False
        if vitals is None:  # no sleeper: an empty bed
            truth = "0,0,,,empty"
        else:
            truth = (
                f"{int(vitals.present)},{int(vitals.moving)},{vitals.heart_bpm:.2f},"
                f"{vitals.breaths_per_min:.2f},{vitals.stage if vitals.present else 'empty'}"
            )
        self._file.write(f"{t:.4f},{code},{truth}\n")
        return True

    def finish(self) -> None:
        self._file.close()
        os.replace(self._partial, self.path)

    def abandon(self) -> None:
        """The simulator stops first: no half recording is left behind."""
        self._file.close()
        self._partial.unlink(missing_ok=True)
