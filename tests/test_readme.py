"""The README's sessions run as written, against a real `soma sim`, and print what it shows.

Every ```sh block of README.md with `$ ` lines is a session: each `$ ` line a command, the
lines under it a sample of what it prints. The rules a session follows (README.md says
them to its reader too):

- a command ending in `&` runs in the background (`soma sim ... &`, whose JSON gives the
  ports); the README's `/dev/pts/N` ports stand for the simulator's, in order of first
  appearance: its beds', then (after --fixture or --bath) its bath's;
- every other command runs on a terminal, as typed there, and must exit 0 (unless an
  `echo $?` line after it shows another status); one whose comment says Ctrl-C runs until
  it is interrupted, as a reader would;
- its sample must match what it printed, line by line, numbers and hex ids aside (a serial,
  a temperature, a time differ from run to run; every word, key and label must be there): a
  `...` line stands for any lines, `...` inside a line for any text.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from terminal import run_in_terminal

pytestmark = pytest.mark.concurrent  # virtual beds in real time, no timing bar judged: two at a time

REPO = Path(__file__).resolve().parents[1]
SOMA = str(Path(sys.executable).with_name("soma"))
INTERACTIVE_S = 5.0  # how long an interactive command runs before its Ctrl-C
TYPING_PAUSE_S = 1.0  # between two commands, as a reader types them
PORT = re.compile(r"/dev/pts/\d+")
HEX = re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
BOX = re.compile(r"[\u2500-\u257f]")


@dataclass
class Command:
    line: str  # as written after "$ "
    sample: list[str] = field(default_factory=list)

    @property
    def words(self) -> list[str]:
        return shlex.split(self.line, comments=True)

    @property
    def comment(self) -> str:
        return self.line.partition("#")[2]


def sessions(text: str) -> list[list[Command]]:
    """The README's sh blocks that hold `$ ` lines, as lists of commands with their samples."""
    found = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M):
        commands: list[Command] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                commands.append(Command(line[2:]))
            elif commands:
                commands[-1].sample.append(line)
        if commands:
            found.append(commands)
    return found


def shape(line: str) -> str:
    """A line without what differs from run to run: numbers, hex ids, table borders, spacing."""
    line = NUMBER.sub("#", HEX.sub("#", BOX.sub(" ", line)))
    return " ".join(line.split())


def line_matches(sample: str, printed: str) -> bool:
    pattern = ".*".join(re.escape(shape(part)) for part in sample.split("..."))
    return re.fullmatch(pattern, shape(printed)) is not None


def missing_from(sample: list[str], printed: list[str]) -> str | None:
    """None if `sample` matches `printed` (blank lines aside): its blocks between `...` lines
    are runs of consecutive printed lines, in order; else the first sample line not found."""
    printed = [line for line in printed if line.strip()]
    blocks: list[list[str]] = [[]]
    for line in sample:
        if line.strip() == "...":
            blocks.append([])
        elif line.strip():
            blocks[-1].append(line)
    start = 0
    for block in filter(None, blocks):
        at = next(
            (
                index
                for index in range(start, len(printed) - len(block) + 1)
                if all(line_matches(want, got) for want, got in zip(block, printed[index:], strict=False))
            ),
            None,
        )
        if at is None:
            return block[0]
        start = at + len(block)
    return None


class Replay:
    """A README session replayed: the background simulator, the ports, each command's run."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        # The simulator's control socket and the beds' files under the test's own folder.
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(folder)}
        self.background: list[subprocess.Popen[str]] = []
        self.ports: dict[str, str] = {}
        self.bed_ports: list[str] = []
        self.bath_port = ""
        self.status = 0

    def args(self, words: list[str]) -> list[str]:
        assert words[0] == "soma", f"a README session runs soma commands only: {words}"
        args = [SOMA]
        for previous, word in zip(words, words[1:], strict=False):
            args.append(PORT.sub(lambda found, previous=previous: self.port(found.group(), previous), word))
        return args

    def port(self, written: str, option: str) -> str:
        if written not in self.ports:
            if option in ("--fixture", "--bath"):
                self.ports[written] = self.bath_port
            else:
                taken = [port for port in self.ports.values() if port in self.bed_ports]
                self.ports[written] = self.bed_ports[len(taken)]
        return self.ports[written]

    def start(self, command: Command) -> None:
        process = subprocess.Popen(
            self.args(command.words[:-1]),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=self.folder,
        )
        self.background.append(process)
        lines: list[str] = []
        while not (lines and lines[-1] == "}"):  # the simulator's JSON, then it runs on
            line = process.stdout.readline() if process.stdout else ""
            assert line, f"{command.line}: {process.stderr.read() if process.stderr else ''}"
            lines.append(line.rstrip("\n"))
        described = json.loads("\n".join(lines))
        self.bed_ports = [bed["port"] for bed in described["beds"]]
        self.bath_port = described["bath"]["port"]
        problem = missing_from(command.sample, lines)
        assert problem is None, f"{command.line}: printed no line like {problem!r}"

    def run(self, command: Command) -> None:
        words = command.words
        if words == ["echo", "$?"]:
            assert [str(self.status)] == [line for line in command.sample if line.strip()], command.sample
            return
        if words[-1] == "&":
            self.start(command)
            return
        interactive = "ctrl-c" in command.comment.lower()
        self.status, printed = run_in_terminal(
            self.args(words), interrupt_after=INTERACTIVE_S if interactive else None, env=self.env, cwd=self.folder
        )
        problem = missing_from(command.sample, printed.splitlines())
        assert problem is None, f"{command.line}: printed no line like {problem!r}; it printed:\n{printed[-4000:]}"

    def check_status(self, command: Command, following: Command | None) -> None:
        if command.words[-1] != "&" and command.words != ["echo", "$?"]:
            if following is None or following.words != ["echo", "$?"]:
                assert self.status == 0, f"{command.line}: exit status {self.status}"

    def close(self) -> None:
        for process in self.background:
            try:
                assert process.wait(timeout=30) == 0, process.stderr.read() if process.stderr else ""
            finally:
                if process.poll() is None:
                    process.kill()


README = (REPO / "README.md").read_text(encoding="utf-8")


@pytest.mark.cpu
def test_the_readme_has_sessions_and_the_shape_check_can_fail():
    (quickstart, *_) = sessions(README)
    assert quickstart[0].words[:2] == ["soma", "sim"] and quickstart[0].words[-1] == "&"
    assert quickstart[-1].words == ["soma", "sim", "stop"]
    printed = ["firmware_version   0.1.0", "unit_serial        5c0a7d3f01a2", "boot_state         trial"]
    assert missing_from(["firmware_version   0.2.7", "...", "unit_serial   5c0ae80e87e8"], printed) is None
    assert missing_from(["boot_state         confirmed"], printed) == "boot_state         confirmed"
    assert missing_from(["unit_serial  1", "firmware_version  1"], printed) is not None  # order counts
    assert missing_from(["firmware_version 1", "boot_state trial"], printed) is not None  # consecutive unless ...
    assert missing_from(['{"a": 1, ..., "z": "on"}'], ['{"a": 2, "b": 3, "z": "on"}']) is None
    assert missing_from(['{"a": 1, ..., "z": "on"}'], ['{"a": 2, "b": 3, "z": "off"}']) is not None


@pytest.mark.parametrize("number", range(len(sessions(README))))
def test_each_readme_session_runs_as_written(tmp_path, number):
    commands = sessions(README)[number]
    replay = Replay(tmp_path)
    try:
        for index, command in enumerate(commands):
            replay.run(command)
            replay.check_status(command, commands[index + 1] if index + 1 < len(commands) else None)
            time.sleep(TYPING_PAUSE_S)
    finally:
        if any(process.poll() is None for process in replay.background):  # the session stopped short
            subprocess.run([SOMA, "sim", "stop"], env=replay.env, timeout=30, capture_output=True)
        replay.close()
