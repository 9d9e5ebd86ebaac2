"""The failure matrix: every command that talks to a unit or reads a file (cli.COMMANDS),
run as a real `soma` subprocess against a real simulator, through every expected failure
that applies to it: no such port, a busy port, a port the user may not open, a port on
which nothing answers (a bare pseudo-terminal), the calibration bath's port given as the
unit's (swapped ports), a blank unit, a Soma firmware stopped at the REPL, a unit that
refuses the request, a missing database driver (psycopg blocked by a sitecustomize on
PYTHONPATH: a real ImportError), missing files and bad usage.

Each case: the exit status documented for its cause (soma.errors.CAUSES), exactly one line
on stderr, starting `soma: error:`, no traceback, and the line the cause's template gives
(so one cause reads the same in every command). Cases on different ports run in parallel;
the cases of one port in turn (a port opens exclusively)."""

import os
import pty
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import serial

from soma.cli import COMMANDS
from soma.errors import CAUSES, failure
from soma.sim.sanctuary import Sanctuary, install_firmware

SOMA = str(Path(sys.executable).with_name("soma"))
REPO = Path(__file__).resolve().parents[1]
PROGRAM = str(REPO / "examples" / "programs" / "night.toml")
MISSING = "/nonexistent/soma-test"
# Commands that open no unit and read no file of the user's: nothing of this matrix applies.
NOT_APPLICABLE = {"tour"}
SHARED = "the running bed and the bath"  # the group of every case that may open either


@dataclass
class Case:
    cause: str  # a CAUSES key, or "input"/"usage" (a command's own check, click's usage check)
    command: str  # the cli.COMMANDS name it exercises
    argv: list[str]
    expected: str | None  # the exact stderr line, where the cause's template decides it
    group: str  # cases of one group run in turn (one port); groups in parallel
    env: dict[str, str] = field(default_factory=dict)
    unprivileged: bool = False  # as root, run without the capabilities that pass file permissions
    before: object = None  # called before the case runs
    result: subprocess.CompletedProcess[str] | None = None


def unit_commands(port: str, bath: str, key: Path) -> dict[str, list[str]]:
    """A call of every command that opens a unit, on `port` (the bath's port as the bath)."""
    return {
        "info": ["info", "--port", port],
        "monitor": ["monitor", "--port", port, "--seconds", "1"],
        "faults": ["faults", "--port", port],
        "faults --clear": ["faults", "--port", port, "--clear"],
        "provision": ["provision", "--port", port, "--sanctuary", "7", "--bed", "1", "--key", str(key)],
        "calibrate": ["calibrate", "--port", port, "--bath", bath, "--settle-timeout", "5"],
        "bench": ["bench", "--port", port, "--only", "identity"],
        "sanctuary": ["sanctuary", "status", "--port", port],
        "program": ["program", "upload", "--port", port, PROGRAM],
        "flash": ["flash", "--port", port],
        "station": ["station", "--port", port, "--bath", bath, "--key", str(key), "--sanctuary", "7"],
    }


@contextmanager
def bare_ptys(count: int) -> Iterator[list[str]]:
    """Pseudo-terminals on which nothing answers (their master ends held, unread)."""
    pairs = [pty.openpty() for _ in range(count)]
    try:
        yield [os.ttyname(follower) for _, follower in pairs]
    finally:
        for pair in pairs:
            for fd in pair:
                os.close(fd)


def stop_at_repl(port: str) -> None:
    """Ctrl-C the unit's application, then a byte: stopped at the REPL, not a stray Ctrl-C."""
    with serial.Serial(port, 115200, timeout=0.2) as line:
        line.write(b"\r\x03")
        time.sleep(0.3)
        line.write(b"\r")
        line.read(4096)


def run(case: Case) -> Case:
    if callable(case.before):
        case.before()
    as_root = case.unprivileged and os.geteuid() == 0
    prefix = ["setpriv", "--bounding-set", "-all", "--inh-caps", "-all"] if as_root else []
    case.result = subprocess.run(
        [*prefix, SOMA, *case.argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **case.env},
    )
    return case


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One sanctuary: bed 1 runs the Soma firmware (unprovisioned: it refuses sanctuary
    requests), bed 2 is blank, bed 3 will be stopped at the REPL; and the bath."""
    root = tmp_path_factory.mktemp("matrix") / "beds"
    install_firmware(root / "bed1")
    shutil.copytree(root / "bed1", root / "bed3")
    with Sanctuary(beds=3, root=root, sleepers=False) as sanctuary:
        yield sanctuary


def build_cases(
    world: Sanctuary, tmp: Path, ptys: list[str], spares: list[str], busy: str, forbidden: str
) -> list[Case]:
    running, blank, stopped = (bed.port for bed in world.beds)
    bath = world.bath.port
    key = tmp / "sanctuary.key"
    key.write_text("00" * 32 + "\n")
    cases: list[Case] = []

    # Every unit command through every failure of its port.
    spare = iter(spares)  # a bath for calibrate where the real one is busy in the shared group
    for name, argv in unit_commands(MISSING, next(spare), key).items():
        cases.append(Case("no_such_port", name, argv, str(failure("no_such_port", port=MISSING)), f"missing {name}"))
    for name, argv in unit_commands(busy, next(spare), key).items():
        cases.append(Case("port_busy", name, argv, str(failure("port_busy", port=busy)), f"busy {name}"))
    for name, argv in unit_commands(forbidden, next(spare), key).items():
        expected = str(failure("port_permission", port=forbidden))
        cases.append(Case("port_permission", name, argv, expected, f"forbidden {name}", unprivileged=True))
    silent = iter(ptys)
    silent_bath = next(spare)
    for name, argv in unit_commands("PORT", silent_bath, key).items():
        if name in ("flash", "station"):
            continue  # flash (the station's first stage) finds no REPL there either: its own cause, below
        port = next(silent)
        argv = [port if arg == "PORT" else arg for arg in argv]
        expected = str(failure("no_answer", port=port, request="info", seconds=3))
        cases.append(Case("no_answer", name, argv, expected, f"silent {port}"))
    for name, argv in unit_commands("PORT", silent_bath, key).items():
        if name in ("flash", "station"):
            port = next(silent)
            argv = [port if arg == "PORT" else arg for arg in argv]
            cases.append(Case("no_repl", name, argv, str(failure("no_repl", port=port)), f"{name} silent"))
    device = f"an instrument (SomaSim,CalBath-1,{world.bath.serial},1.0)"
    for name, argv in unit_commands(bath, running, key).items():  # swapped: the bath given as the unit
        if name in ("flash", "station"):
            continue
        expected = str(failure("not_soma", port=bath, device=device))
        cases.append(Case("not_soma", name, argv, expected, SHARED))
    for name, argv in unit_commands(blank, next(spare), key).items():
        if name in ("flash", "station"):
            continue  # the fix: it installs the firmware
        cases.append(Case("blank", name, argv, str(failure("blank", port=blank)), "blank"))
    for name, argv in unit_commands(stopped, next(spare), key).items():
        if name in ("flash", "station"):
            continue  # the fix: it restarts the firmware (test_flash)
        expected = str(failure("firmware_stopped", port=stopped))
        cases.append(Case("firmware_stopped", name, argv, expected, "stopped", before=lambda: stop_at_repl(stopped)))

    # Refusals, in words: an unprovisioned bed answers sanctuary requests with "refused".
    reason = "it is not provisioned: `soma provision` first"
    for name in ("sanctuary", "program"):
        argv = unit_commands(running, bath, key)[name]
        expected = str(failure("refused", port=running, request="sanctuary_status", reason=reason))
        cases.append(Case("refused", name, argv, expected, SHARED))

    # The database driver missing (a real ImportError), in every command that records.
    blocker = tmp / "no-psycopg"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            import sys

            class _NoPsycopg:
                def find_spec(self, name, path=None, target=None):
                    if name.partition(".")[0] in ("psycopg", "psycopg2", "psycopg_binary"):
                        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                    return None

            sys.meta_path.insert(0, _NoPsycopg())
            """
        )
    )
    env = {"PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    url = "postgresql://station@localhost/soma"
    recording = {
        "units": ["units", "--db", url],
        "history": ["history", "5c0a00000000", "--db", url],
        "flash": ["flash", "--port", running, "--db", url],
        "calibrate": ["calibrate", "--port", running, "--bath", bath, "--db", url],
        "bench": ["bench", "--port", running, "--only", "identity", "--db", url],
        "provision": ["provision", "--port", running, "--sanctuary", "7", "--bed", "1", "--key", str(key), "--db", url],
    }
    for name, argv in recording.items():
        cases.append(Case("missing_driver", name, argv, None, SHARED if "--port" in argv else name, env=env))

    # Files that cannot be read, and bad usage: one line too.
    unreadable = {
        "decode": ["decode", "--key", MISSING, "00"],
        "replay": ["replay", MISSING],
        "program": ["program", "show", MISSING],
        "bench": ["bench", "--port", running, "--plan", MISSING],
        "units": ["units", "--db", MISSING + "/soma.db"],
        "history": ["history", "5c0a00000000", "--db", MISSING + "/soma.db"],
    }
    for name, argv in unreadable.items():
        cases.append(Case("input", name, argv, None, SHARED if "--port" in argv else f"file {name}"))
    usage = {
        "demo": ["demo", "--beds", "0"],
        "sim": ["sim", "--beds", "0"],
        "ports": ["ports", "--no-such-option"],
        "decode": ["decode", "zz"],
    }
    for name, argv in usage.items():
        cases.append(Case("usage", name, argv, None, f"usage {name}"))
    return cases


@contextmanager
def held_exclusively(port: str) -> Iterator[None]:
    """Another program holding the port open, as pyserial's exclusive=True holds it."""
    with serial.Serial(port, 115200, exclusive=True):
        yield


def test_every_command_through_every_failure_is_one_line_with_its_exit_status(world, tmp_path):
    started = time.monotonic()
    with bare_ptys(19) as ptys, held_exclusively(ptys[-1]):
        busy, forbidden = ptys[-1], ptys[-2]
        os.chmod(forbidden, 0)  # nobody may open it (root without its capabilities included)
        cases = build_cases(world, tmp_path, ptys[:11], ptys[11:17], busy, forbidden)
        groups: dict[str, list[Case]] = {}
        for case in cases:
            groups.setdefault(case.group, []).append(case)

        def run_group(group: list[Case]) -> list[Case]:
            return [run(case) for case in group]

        with ThreadPoolExecutor(max_workers=8) as pool:
            done = [case for group in pool.map(run_group, groups.values()) for case in group]
    seconds = time.monotonic() - started

    problems = []
    for case in done:
        assert case.result is not None
        stderr = case.result.stderr
        lines = stderr.strip().splitlines()
        exit_code = CAUSES[case.cause].exit_code if case.cause in CAUSES else 2
        what = f"{case.cause} / soma {' '.join(case.argv)}: exit {case.result.returncode}, stderr {stderr!r}"
        if "Traceback" in stderr or len(lines) != 1 or not lines[0].startswith("soma: error: "):
            problems.append(f"not one line: {what}")
        elif case.result.returncode != exit_code:
            problems.append(f"exit status not {exit_code}: {what}")
        elif case.expected is not None and lines[0] != f"soma: error: {case.expected}":
            problems.append(f"not worded as its cause ({case.expected!r}): {what}")
    assert not problems, "\n".join(problems)

    # The same cause reads the same in every command (the driver's and the files' too).
    for cause in ("missing_driver",):
        worded = {case.result.stderr for case in done if case.cause == cause and case.result}
        assert len(worded) == 1 and "psycopg" in worded.pop(), cause
    # Every command of cli.COMMANDS went through the matrix (or is listed as not applicable).
    exercised = {case.argv[0] for case in done}
    assert exercised | NOT_APPLICABLE == set(COMMANDS), set(COMMANDS) - exercised - NOT_APPLICABLE
    assert seconds < 90, f"the matrix took {seconds:.0f} s"
