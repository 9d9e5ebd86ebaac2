"""Where the host finds the firmware tree and the MicroPython interpreter."""

import os
import shutil
import sys
import types
from pathlib import Path
from typing import cast

REPO = Path(__file__).resolve().parents[2]


class ToolMissing(RuntimeError):
    """A required tool or tree is not installed where expected."""


def firmware_dir() -> Path:
    path = Path(os.environ.get("SOMA_FIRMWARE_DIR", REPO / "firmware"))
    if not (path / "wire_codec.py").is_file():
        raise ToolMissing(f"no firmware tree at {path} (set SOMA_FIRMWARE_DIR)")
    return path


def micropython() -> str:
    """The MicroPython unix-port binary: the venv's first, then PATH."""
    found = shutil.which(
        "micropython", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )
    if not found:
        raise ToolMissing("no `micropython` command: run `make setup`")
    return found


def import_firmware_module(name: str) -> types.ModuleType:
    """Import one firmware module under CPython (for simulations that run it unchanged):
    firmware/ on the path, and MicroPython's const() as the identity."""
    import importlib

    # A stand-in for MicroPython's `micropython` module, of which firmware uses const() only.
    sys.modules.setdefault("micropython", cast(types.ModuleType, types.SimpleNamespace(const=int)))
    directory = str(firmware_dir())
    if directory not in sys.path:
        sys.path.append(directory)
    return importlib.import_module(name)
