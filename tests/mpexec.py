"""Run MicroPython code against the firmware as deployed: every module cross-compiled to
.mpy with mpy-cross (plus the scripted board and scenarios in tests/mp), under a given
heap. Returns json of the script's last stdout line. Used by the tests and benchmarks."""

import atexit
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from soma import paths
from soma.station.firmware_build import compile_tree

MP_HELPERS = paths.REPO / "tests" / "mp"
SHARED_MODELS = paths.REPO / "host" / "soma" / "sim"  # pad_model.py and safety_oracle.py run under MicroPython too
_compiled = {}


class MicroPythonFailed(AssertionError):
    """The script raised or was killed; its stderr is the message."""


def compiled_tree():
    """A directory with firmware/*.mpy and tests/mp/*.mpy, built once per test session."""
    if "dir" not in _compiled:
        out = Path(tempfile.mkdtemp(prefix="soma-mpy-"))
        atexit.register(shutil.rmtree, out, ignore_errors=True)
        compile_tree(out)
        compile_tree(out, MP_HELPERS)
        compile_tree(out, SHARED_MODELS, only=("pad_model.py", "safety_oracle.py"))
        _compiled["dir"] = out
    return _compiled["dir"]


def run_micropython(code, heap="96K", cwd=None, timeout=300):
    """Execute `code` under `micropython -X heapsize=heap`; return json of its last stdout line."""
    env = dict(os.environ, MICROPYPATH=str(compiled_tree()))
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
