"""Run a MicroPython script with the firmware tree (and tests/mp) on its path, under the
board's heap budget, and return what it printed as JSON (its last stdout line)."""

import json
import os
import subprocess
from pathlib import Path

from soma import paths

TESTS = Path(__file__).resolve().parent
MP_HELPERS = TESTS / "mp"


class MicroPythonFailed(AssertionError):
    """The script raised or was killed; its stderr is the message."""


def run_micropython(code, heap="96K", cwd=None, timeout=120):
    """Execute `code` under `micropython -X heapsize=heap`; return json of its last stdout line."""
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([str(paths.firmware_dir()), str(MP_HELPERS)]))
    result = subprocess.run(
        [paths.micropython(), "-X", f"heapsize={heap}", "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )
    if result.returncode != 0:
        raise MicroPythonFailed(f"micropython exited {result.returncode}:\n{result.stderr}\n{result.stdout[-2000:]}")
    lines = result.stdout.strip().splitlines()
    if not lines:
        raise MicroPythonFailed(f"micropython printed nothing:\n{result.stderr}")
    return json.loads(lines[-1])
