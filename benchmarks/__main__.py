"""`python -m benchmarks AREA`: run the benchmarks of one area and record their figures.

Each area is a module benchmarks/<area>.py with a `run()` that yields `benchmarks.Result`s. The exit
status is 1 when a virtual bed's safety oracle saw a breach (the figures are recorded all
the same).
"""

import importlib
import pkgutil
import sys
from collections.abc import Sequence

import benchmarks


def main(argv: Sequence[str]) -> int:
    areas = sorted(info.name for info in pkgutil.iter_modules(benchmarks.__path__) if not info.name.startswith("_"))
    if len(argv) != 1 or argv[0] not in areas:
        given = f"unknown area {argv[0]!r}" if len(argv) == 1 else "expected one area"
        print(f"benchmarks: {given} (areas: {', '.join(areas)})", file=sys.stderr)
        return 2
    area = argv[0]
    breaches = benchmarks.record(area, importlib.import_module(f"benchmarks.{area}").run())
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
