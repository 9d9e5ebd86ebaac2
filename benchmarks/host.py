"""Host tool benchmarks on virtual beds behind a 115200-baud paced serial line.

- flash.build_s: compiling the firmware tree and building the manifest (soma flash does it once)
- flash.full_deploy_s: flashing that image onto a blank unit, from opening the port to
  the new firmware confirmed (transfer, on-unit verify, switch, reset, self-checks)
- flash.mpremote_cp_s: stock `mpremote fs cp -r` of the same tree (the .mpy files and
  main.py) onto another blank unit over the same kind of line, in the same run
- flash.speedup_vs_mpremote: mpremote_cp_s / full_deploy_s
- flash.unchanged_redeploy_s: flashing the same image again
- flash.one_file_deploy_s: flashing an image with one module changed
- calibrate.max_error_c: worst error after calibration, over every check point and
  sensor of units with R25 +-5 % and B +-2 % (bar 0.1 degC)
- bench.plan_s: the default bench plan (every step) on a unit in the bench fixture, with
  the pads' physics PLAN_TIME_SCALE times faster than real time (the firmware, the line
  and the watchdog run in real time); on hardware the thermal steps take their full time
- safety.breaches: what the beds' safety oracles saw over the whole run (bar 0; bench.record adds it)
"""

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from soma import paths
from soma.link.unit import UnitLink
from soma.sim.sanctuary import Sanctuary
from soma.station.flashing import Image, flash

from . import Result

BAUD = 115200
CALIBRATION_SEEDS = (4, 11, 23)
PLAN_TIME_SCALE = 20


def run() -> Iterator[Result]:
    with tempfile.TemporaryDirectory(prefix="soma-bench-host-") as scratch_dir:
        scratch = Path(scratch_dir)
        yield from _flash_figures(scratch)
        yield from _calibration_figures(scratch)
        yield from _bench_plan_figures(scratch)


def _flash_figures(scratch: Path) -> Iterator[Result]:
    started = time.monotonic()
    image = Image.build()
    yield Result("flash.build_s", round(time.monotonic() - started, 3), "s")
    tree = scratch / "tree"
    tree.mkdir()
    for name, data in image.files.items():
        (tree / name).write_bytes(data)
    for name, data in image.root.items():
        (tree / name).write_bytes(data)
    changed = _with_one_module_changed(scratch)
    with Sanctuary(beds=2, root=scratch / "flash", baud=BAUD) as sanctuary:
        ours, theirs = (bed.port for bed in sanctuary.beds)
        with UnitLink(ours, BAUD) as link:
            started = time.monotonic()
            result = flash(link, image)
            full = time.monotonic() - started
            if result.status != "installed":
                raise RuntimeError(f"first install ended {result.status}")
            started = time.monotonic()
            again = flash(link, image)
            unchanged = time.monotonic() - started
            started = time.monotonic()
            one = flash(link, changed)
            one_file = time.monotonic() - started
            if again.status != "unchanged" or one.files_sent != 1:
                raise RuntimeError(f"re-deploys ended {again.status} and sent {one.files_sent} files")
        mpremote = str(Path(sys.executable).with_name("mpremote"))
        started = time.monotonic()
        copy = [mpremote, "connect", theirs, "fs", "cp", "-r", str(tree), ":."]
        subprocess.run(copy, check=True, capture_output=True)
        stock = time.monotonic() - started
    yield Result("flash.full_deploy_s", round(full, 3), "s")
    yield Result("flash.mpremote_cp_s", round(stock, 3), "s")
    yield Result("flash.speedup_vs_mpremote", round(stock / full, 2), "x")
    yield Result("flash.unchanged_redeploy_s", round(unchanged, 3), "s")
    yield Result("flash.one_file_deploy_s", round(one_file, 3), "s")


def _with_one_module_changed(scratch: Path) -> Image:
    source = scratch / "changed"
    shutil.copytree(paths.firmware_dir(), source)
    timebase = source / "timebase.py"
    timebase.write_text(timebase.read_text() + "\n_BUILD = 2\n")
    return Image.build(source)


def _calibration_figures(scratch: Path) -> Iterator[Result]:
    from soma.link.serial_link import SerialLink
    from soma.station.calibration import Bath, calibrate

    worst = 0.0
    for seed in CALIBRATION_SEEDS:
        with Sanctuary(beds=1, root=scratch / f"cal{seed}", flashed=True, baud=BAUD, time_scale=1000, seed=seed) as s:
            s.place_in_bath(1)
            with SerialLink(s.bath.port, 9600) as bath_link, SerialLink(s.beds[0].port, BAUD) as link:
                report = calibrate(link.management(), Bath(bath_link))
        worst = max(worst, report.max_error_after_c)
    yield Result("calibrate.max_error_c", round(worst, 4), "degC")


def _bench_plan_figures(scratch: Path) -> Iterator[Result]:
    from soma.link.serial_link import SerialLink
    from soma.station.bench.kinds import Station
    from soma.station.bench.plan import DEFAULT_PLAN, Plan
    from soma.station.bench.run import run_plan
    from soma.station.calibration import Bath

    plan = Plan.load(DEFAULT_PLAN)
    with Sanctuary(beds=1, root=scratch / "plan", flashed=True, baud=BAUD, time_scale=PLAN_TIME_SCALE) as sanctuary:
        sanctuary.place_in_fixture(1)
        with SerialLink(sanctuary.beds[0].port, BAUD) as link, SerialLink(sanctuary.bath.port, 9600) as fixture:
            client = link.management()
            client.request("info", timeout=10)
            report = run_plan(plan, Station(client, Bath(fixture)))
    if not report.passed:
        failed = [f"{step.id}: {step.message}" for step in report.steps if not step.passed]
        raise RuntimeError(f"the bench plan failed on a healthy unit: {failed}")
    yield Result("bench.plan_s", round(report.seconds, 2), "s")
