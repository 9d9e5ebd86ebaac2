"""Where the host finds the firmware tree and the MicroPython interpreter."""

import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class ToolMissing(RuntimeError):
    """A required tool or tree is not installed where expected."""


def firmware_dir():
    path = Path(os.environ.get("SOMA_FIRMWARE_DIR", REPO / "firmware"))
    if not (path / "wire_codec.py").is_file():
        raise ToolMissing(f"no firmware tree at {path} (set SOMA_FIRMWARE_DIR)")
    return path


def micropython():
    """The MicroPython unix-port binary: the venv's first, then PATH."""
    found = shutil.which(
        "micropython", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )
    if not found:
        raise ToolMissing("no `micropython` command: run `make setup`")
    return found


def import_firmware_module(name):
    """Import one firmware module under CPython (for simulations that run it unchanged):
    firmware/ on the path, and MicroPython's const() as the identity."""
    import importlib
    import types

    sys.modules.setdefault("micropython", types.SimpleNamespace(const=int))
    directory = str(firmware_dir())
    if directory not in sys.path:
        sys.path.append(directory)
    return importlib.import_module(name)
