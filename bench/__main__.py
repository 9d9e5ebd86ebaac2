"""`python -m bench AREA`: run the benchmarks of one area and record their figures.

Each area is a module bench/<area>.py with a `run()` that yields `bench.Result`s.
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
    bench.record(area, importlib.import_module(f"bench.{area}").run())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
