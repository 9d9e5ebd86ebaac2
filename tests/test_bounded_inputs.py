"""Every file the host reads is size-capped or streamed, and garbage in it is one line:
programs and bench plans past 64 KiB, with a 4300-digit number or nested past Python's
recursion limit; a firmware tree without main.py or with a syntax error (nothing written
to the unit); a --db or --new-key path that cannot be; `soma sim --blank` over flashed beds.
(Replay inputs: tests/test_sensing.py.)"""

import subprocess
import sys
from pathlib import Path

import pytest

from soma import paths
from soma.files import DOCUMENT_MAX_BYTES
from soma.station.bench.plan import Plan, PlanError

pytestmark = pytest.mark.concurrent  # virtual beds in real time, no timing bar judged: two at a time

SOMA = str(Path(sys.executable).with_name("soma"))

BAD_DOCUMENTS = [
    ("long.toml", "id = 1" + "1" * 4400 + "\n", "a number longer than 4300 digits"),
    ("long.json", '{"id": 1' + "1" * 4400 + "}", "a number longer than 4300 digits"),
    ("deep.toml", "x = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deep"),
    ("deep.json", "[" * 5000 + "]" * 5000, "nested too deep"),
    ("huge.toml", "# " + "x" * DOCUMENT_MAX_BYTES + "\n", "larger than 64 KiB"),
]


def soma(*args):
    return subprocess.run([SOMA, *map(str, args)], capture_output=True, text=True, timeout=60)


def one_line_exit_2(result, *wanted):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    for text in wanted:
        assert text in result.stderr, result.stderr


@pytest.mark.cpu
@pytest.mark.parametrize(("name", "text", "message"), BAD_DOCUMENTS)
def test_a_program_file_too_long_too_deep_or_too_large_is_one_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    one_line_exit_2(soma("program", "show", path), f"{path}: {message}")


@pytest.mark.cpu
def test_a_device_as_a_program_is_refused_not_read_for_ever(tmp_path):
    (tmp_path / "zero.toml").symlink_to("/dev/zero")
    one_line_exit_2(soma("program", "show", tmp_path / "zero.toml"), "larger than 64 KiB, too large for a program")


@pytest.mark.cpu
@pytest.mark.parametrize(("name", "text", "message"), [case for case in BAD_DOCUMENTS if case[0].endswith(".toml")])
def test_a_bench_plan_too_long_too_deep_or_too_large_is_one_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(PlanError, match=message):
        Plan.load(path)
    one_line_exit_2(soma("bench", "--port", "/dev/null", "--plan", path), message)


def _tree(tmp_path, edit):
    tree = tmp_path / "tree"
    subprocess.run(["cp", "-r", str(paths.firmware_dir()), str(tree)], check=True)
    edit(tree)
    return tree


def _flash_files(root):
    """What a flash writes: the slots, the boot loader and boot.json (not the firmware's own records)."""
    root = Path(root)
    files = [root / "main.py", root / "boot.json", *root.glob("slot_*/*")]
    return {path: path.read_bytes() for path in files if path.is_file()}


def _break(name):
    """An edit that makes line 1 of module `name` a syntax error."""
    return lambda tree: (tree / name).write_text("def broken(:\n" + (tree / name).read_text())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda tree: (tree / "main.py").unlink(),
            "tree: no main.py (the boot loader a unit runs): not a firmware tree",
        ),
        (_break("timebase.py"), "tree/timebase.py:1: SyntaxError: invalid syntax (mpy-cross cannot compile it)"),
        (_break("main.py"), "tree/main.py:1: SyntaxError: invalid syntax (mpy-cross cannot compile it)"),
    ],
)
def test_flash_of_a_broken_firmware_tree_is_one_line_and_writes_nothing(tmp_path, edit, message):
    from soma.sim.sanctuary import Sanctuary

    tree = _tree(tmp_path, edit)
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True) as sanctuary:
        flash_dir = sanctuary.beds[0].line.flash_dir
        before = _flash_files(flash_dir)
        result = soma("flash", "--port", sanctuary.beds[0].port, "--firmware", tree, "--db", tmp_path / "t.db")
        one_line_exit_2(result, f"{tmp_path}/{message}")
        assert _flash_files(flash_dir) == before


@pytest.mark.cpu
@pytest.mark.parametrize("command", ["flash", "calibrate", "provision", "bench"])
def test_a_database_under_a_regular_file_is_one_line(tmp_path, command):
    (tmp_path / "file").write_text("")
    extra = {
        "calibrate": ["--bath", "/dev/null"],
        "provision": ["--sanctuary", "1", "--bed", "1", "--new-key", tmp_path / "k.key"],
        "bench": ["--only", "identity"],
    }.get(command, [])
    result = soma(command, "--port", tmp_path / "no-port", "--db", tmp_path / "file" / "t.db", *extra)
    one_line_exit_2(result, "file")
    assert not (tmp_path / "k.key").exists()


@pytest.mark.cpu
@pytest.mark.parametrize("folder", ["missing", "file"])
def test_a_new_key_into_a_missing_folder_is_one_line_before_the_unit_is_opened(tmp_path, folder):
    (tmp_path / "file").write_text("")
    key = tmp_path / folder / "k.key"
    result = soma("provision", "--port", tmp_path / "no-port", "--sanctuary", "1", "--bed", "1", "--new-key", key)
    one_line_exit_2(result, f"--new-key {key}: no folder {tmp_path / folder}")


def test_sim_blank_over_flashed_beds_is_refused_in_one_line(tmp_path):
    from soma.sim.sanctuary import install_firmware

    install_firmware(tmp_path / "root" / "bed2")
    result = soma("sim", "--beds", "2", "--blank", "--root", tmp_path / "root", "--control", tmp_path / "c.sock")
    one_line_exit_2(result, f"--blank: {tmp_path / 'root' / 'bed2'} already holds a unit's flash")
    assert not (tmp_path / "c.sock").exists()
