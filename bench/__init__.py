"""Soma benchmarks: each area (bench/<area>.py) measures one part of the system.

An area's `run()` yields `Result`s; `record` prints each as one JSON line as soon as it
is measured and, once the whole area has finished, saves them all to
bench-results/<area>.jsonl.
"""

import json
from pathlib import Path
from typing import NamedTuple

RESULTS_DIR = Path(__file__).resolve().parent.parent / "bench-results"


class Result(NamedTuple):
    """One measured figure."""

    name: str
    value: float
    unit: str


def record(area, results):
    """Print each result as a JSON line, then write them all to RESULTS_DIR/<area>.jsonl at once."""
    lines = []
    for result in results:
        line = json.dumps(result._asdict())
        print(line, flush=True)
        lines.append(line + "\n")
    RESULTS_DIR.mkdir(exist_ok=True)
    target = RESULTS_DIR / f"{area}.jsonl"
    partial = target.with_name(target.name + ".tmp")
    partial.write_text("".join(lines))
    partial.replace(target)  # atomic: readers see the old file or the whole new one
