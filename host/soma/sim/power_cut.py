"""A power cut that lands in the middle of a unit's flash writes, whoever writes them.

The firmware's own writes (records, calibration, keys) are counted exactly by the firmware's
sim board (hal_sim.SimFlash: the world sends it the budget), which cuts inside the write that
crosses it. When no firmware runs, nobody in the unit counts: a blank unit, or `soma
flash`'s receiver in the raw REPL, which drops the application and writes the files itself.
FlashWriteWatch counts those from outside: it polls the flash directory and pulls the
power (a power-on reset of the unit's process) once more than `after_bytes` bytes were
written since it was armed, so the cut lands within one poll of that count (a few KiB on
an unpaced line). Written bytes are the sizes of files that appeared or changed since; the
firmware's writes count no more here than in its own budget, so its cut always comes
first, and the watch stands down when the unit is reset or loses power for any reason
(that cut included): one cut, never two. A soft reset does not count (`soma flash` makes
one to give its receiver the heap whole).
"""

import os
import threading
from pathlib import Path
from typing import Protocol

from soma.sim.virtual_bed import POWER_ON, SOFT

POLL_S = 0.005

FileState = tuple[int, int, int]  # size, mtime_ns, inode


class Line(Protocol):
    """What the watch needs of a virtual bed's line (virtual_bed.VirtualBed)."""

    flash_dir: str
    resets: dict[int, int]  # restarts so far, by cause

    def reset(self, cause: int = ...) -> None: ...


class FlashWriteWatch:
    def __init__(self, line: Line, after_bytes: int) -> None:
        self.line = line
        self.after_bytes = after_bytes
        self.cut = False  # the watch pulled the power
        self._resets = self._hard_resets()
        self._before = _files(Path(line.flash_dir))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="power-cut-watch", daemon=True)

    def start(self) -> "FlashWriteWatch":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=2)

    def written(self) -> int:
        """Bytes written to the flash directory since the watch was armed."""
        now = _files(Path(self.line.flash_dir))
        return sum(state[0] for path, state in now.items() if self._before.get(path) != state)

    def _hard_resets(self) -> int:
        return sum(count for cause, count in self.line.resets.items() if cause != SOFT)

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            if self._hard_resets() != self._resets:
                return  # the unit was reset (its firmware's own cut among them): stand down
            if self.written() > self.after_bytes:
                self.line.reset(POWER_ON)
                self.cut = True
                return


def _files(root: Path) -> dict[str, FileState]:
    """Every file under `root` (the flash directory and its slots), by path."""
    found: dict[str, FileState] = {}
    folders = [root]
    while folders:
        try:
            entries = list(os.scandir(folders.pop()))
        except OSError:
            continue  # a folder removed while we looked
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(Path(entry.path))
                else:
                    stat = entry.stat(follow_symlinks=False)
                    found[entry.path] = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
            except OSError:
                continue  # a file renamed or removed while we looked
    return found
