"""Soma benchmarks: each area (benchmarks/<area>.py) measures one part of the system.

An area's `run()` yields `Result`s; `record` prints each as one JSON line as soon as it
is measured and, once the whole area has finished, saves them all to
bench-results/<area>.jsonl. An area that runs virtual beds gets one more figure,
safety.breaches (bar 0): the breaches their safety oracles saw over the whole run, each
breach also told on stderr. `record` returns every breach, those an area counted itself
(a safety.breaches figure of its own) included.
"""

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # mpexec: firmware under MicroPython

from soma.files import write_atomically
from soma.sim.world import oracles_created

RESULTS_DIR = Path(__file__).resolve().parent.parent / "bench-results"


class Result(NamedTuple):
    """One measured figure."""

    name: str
    value: float
    unit: str


def record(area: str, results: Iterable[Result]) -> float:
    """Print each result as a JSON line, then write them all to RESULTS_DIR/<area>.jsonl at once.
    Return the safety breaches the area's virtual beds saw."""
    lines: list[str] = []

    def emit(result: Result) -> None:
        line = json.dumps(result._asdict())
        print(line, flush=True)
        lines.append(line + "\n")

    reported = 0.0  # what an area's own referees counted (one running beds in virtual time)
    with oracles_created() as oracles:
        for result in results:
            emit(result)
            if result.name == "safety.breaches":
                reported += result.value
    breaches = sum(oracle.breached for oracle in oracles)
    if oracles:
        emit(Result("safety.breaches", breaches, "breaches"))
    for oracle in oracles:
        for _, rule, detail in oracle.breaches:
            print(f"safety breach: {rule} ({detail})", file=sys.stderr)
    RESULTS_DIR.mkdir(exist_ok=True)
    target = RESULTS_DIR / f"{area}.jsonl"
    write_atomically(target, lambda f: f.write("".join(lines).encode()), "results")  # old or whole new
    return breaches + reported
