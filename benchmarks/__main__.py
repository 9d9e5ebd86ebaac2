"""`python -m bench AREA`: run the benchmarks of one area and record their figures.

Each area is a module bench/<area>.py with a `run()` that yields `bench.Result`s. The exit
status is 1 when a virtual bed's safety oracle saw a breach (the figures are recorded all
the same).
"""

import importlib
import pkgutil
import sys

import bench


def main(argv):
    areas = sorted(info.name for info in pkgutil.iter_modules(bench.__path__) if not info.name.startswith("_"))
    if len(argv) != 1 or argv[0] not in areas:
        given = f"unknown area {argv[0]!r}" if len(argv) == 1 else "expected one area"
        print(f"bench: {given} (areas: {', '.join(areas)})", file=sys.stderr)
        return 2
    area = argv[0]
    breaches = bench.record(area, importlib.import_module(f"bench.{area}").run())
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
