"""Traceability records of the commands on virtual beds, on SQLite and on a real PostgreSQL
(conftest's `records_db`): every flash lands with the unit's serial, firmware hash, station
and operator; a flash the host never finished is decided at the next contact; a partial
bench is recorded as partial and never stands for the unit's verdict; refused calibrations
and provisionings are recorded with their reason; `soma units` and `soma history` read them
back; a bad database is one line."""

import json
import shutil
import sqlite3
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from soma import paths
from soma.link.session import open_unit
from soma.sim.sanctuary import Sanctuary
from soma.station.flashing import Image, flash
from soma.station.traceability import Records

pytestmark = pytest.mark.concurrent  # virtual beds in real time, no timing bar judged: two at a time

SOMA = str(Path(sys.executable).with_name("soma"))


def soma(*args):
    return subprocess.run([SOMA, *args], capture_output=True, text=True, timeout=120)


def error_of(result):
    """The one line a failed command printed, without its `soma: error: ` prefix."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0].removeprefix("soma: error: ")


def test_flash_is_recorded_and_read_back(tmp_path, records_db):
    db = records_db
    with Sanctuary(beds=1, root=tmp_path / "beds") as sanctuary:
        bed = sanctuary.beds[0]
        flashed = soma("flash", "--port", bed.port, "--db", db, "--station", "line-2", "--operator", "ana", "--json")
        assert flashed.returncode == 0, flashed.stderr
        again = soma("flash", "--port", bed.port, "--db", db, "--station", "line-2", "--json")
        assert again.returncode == 0, again.stderr
    units = json.loads(soma("units", "--db", db, "--json").stdout)
    assert [unit["serial"] for unit in units] == [bed.unit.serial]
    assert (units[0]["stages"]["flash"]["outcome"], units[0]["stages"]["bench"]) == ("unchanged", None)
    history = json.loads(soma("history", bed.unit.serial, "--db", db, "--json").stdout)
    # A blank unit has no serial to record a start against: its first flash is recorded as it ends.
    assert [(run["kind"], run["outcome"], run["status"], run["station"]) for run in history] == [
        ("flash", "installed", "ok", "line-2"),
        ("flash", "unchanged", "ok", "line-2"),
    ]
    assert (
        history[0]["operator"] == "ana" and history[0]["firmware_hash"] == json.loads(flashed.stdout)["firmware_hash"]
    )
    table = soma("units", "--db", db)
    assert table.returncode == 0 and bed.unit.serial in table.stdout and "unchanged" in table.stdout, table.stderr


def test_a_flash_the_host_never_finished_is_found_at_the_next_contact(tmp_path, records_db):
    tree = tmp_path / "firmware"
    shutil.copytree(paths.firmware_dir(), tree)
    with (tree / "thermistor.py").open("a") as module:
        module.write("\n_TRACEABILITY_TEST_BUILD = 1\n")  # another firmware hash
    other = Image.build(tree)
    records = Records(records_db)
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True) as sanctuary:
        bed = sanctuary.beds[0]
        # The host records the start, the unit takes the whole flash, and the host dies
        # before it records the end: no done(), no failure.
        with records.stage("flash", "failed", "line-1") as stage, open_unit(bed.port, firmware=False) as unit:
            stage.met(unit.info)
            assert flash(unit, other, on_first_write=partial(stage.start, other.firmware_hash)).status == "installed"
        assert records.units()[0]["stages"]["flash"]["outcome"] == "started"
        # A full bench failed earlier; now a partial one passes.
        records.record(bed.unit.serial, "bench", "fail", station="line-1", reason="failed: heater_left")
        bench = soma("bench", "--port", bed.port, "--only", "identity", "--db", records_db, "--station", "line-3")
        assert bench.returncode == 0, bench.stdout + bench.stderr
        history = json.loads(soma("history", bed.unit.serial, "--db", records_db, "--json").stdout)
        started, _full_bench, found = history[:3]
        assert (started["outcome"], found["outcome"], found["status"]) == ("started", "installed", "ok")
        assert found["follows"] == started["id"] and found["station"] == "line-3"
        assert found["reason"].startswith("found at next contact") and found["firmware_hash"] == other.firmware_hash
        partial_bench = history[-1]
        assert (partial_bench["kind"], partial_bench["outcome"], partial_bench["scope"]) == ("bench", "pass", "partial")
        assert [step["id"] for step in partial_bench["details"]["steps"]] == ["identity"]
        (unit,) = json.loads(soma("units", "--db", records_db, "--json").stdout)
        assert (unit["stages"]["bench"]["outcome"], unit["stages"]["bench"]["scope"]) == ("fail", "full")
        assert unit["firmware_hash"] == other.firmware_hash
        # The factory's firmware back on: its start and its end, the end naming the start.
        back = soma("flash", "--port", bed.port, "--db", records_db, "--json")
        assert back.returncode == 0, back.stderr
    started, installed = json.loads(soma("history", bed.unit.serial, "--db", records_db, "--json").stdout)[-2:]
    assert (started["outcome"], installed["outcome"], installed["follows"]) == ("started", "installed", started["id"])
    assert started["firmware_hash"] == installed["firmware_hash"] == json.loads(back.stdout)["firmware_hash"]


# The record path is the same on both databases; the unit takes ~20 s to give the firmware up.
@pytest.mark.parametrize("records_db", ["sqlite"], indirect=True)
def test_a_rolled_back_flash_is_recorded_failed_with_its_reason(tmp_path, records_db):
    tree = tmp_path / "firmware"
    shutil.copytree(paths.firmware_dir(), tree)
    with (tree / "thermistor.py").open("a") as module:
        module.write('\nraise RuntimeError("broken at import")\n')  # the new firmware never confirms itself
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True) as sanctuary:
        bed = sanctuary.beds[0]
        before = Records(records_db).record(bed.unit.serial, "flash", "installed", "aaaaaaaaaaaaaaaa")
        result = soma("flash", "--port", bed.port, "--firmware", str(tree), "--db", records_db)
    assert result.returncode == 1, result.stdout + result.stderr
    records = Records(records_db, create=False)
    started, rolled_back = records.history(bed.unit.serial)[-2:]
    assert started["id"] > before and rolled_back["follows"] == started["id"]
    assert (rolled_back["outcome"], rolled_back["status"]) == ("rolled_back", "failed")
    assert "did not confirm itself" in rolled_back["reason"]
    assert rolled_back["reason"].endswith("RuntimeError: broken at import")  # the failed boot's last words
    assert records.units()[0]["firmware_hash"] == "aaaaaaaaaaaaaaaa"  # a failed flash's firmware is not the unit's


def test_a_calibration_of_a_unit_not_in_the_bath_is_recorded_refused(tmp_path, records_db):
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True, time_scale=1000) as sanctuary:
        bed = sanctuary.beds[0]
        result = soma(
            "calibrate", "--port", bed.port, "--bath", sanctuary.bath.port, "--points", "15,28,42",
            "--settle-timeout", "30", "--db", records_db, "--station", "bath-1",
        )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    (run,) = Records(records_db, create=False).history(bed.unit.serial)
    assert (run["kind"], run["outcome"], run["status"], run["station"]) == ("calibrate", "refused", "refused", "bath-1")
    assert run["reason"] == error_of(result)


def test_provisioning_is_recorded_and_a_power_cut_is_recorded_refused(tmp_path, records_db):
    key = tmp_path / "sanctuary.key"
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True) as sanctuary:
        bed = sanctuary.beds[0]
        args = ("provision", "--port", bed.port, "--sanctuary", "7", "--db", records_db, "--operator", "ana")
        done = soma(*args, "--bed", "3", "--new-key", str(key))
        assert done.returncode == 0, done.stderr
        bed.world.cut_power_after(8)  # the next key record write stops half-way
        cut = soma(*args, "--bed", "4", "--key", str(key))
    assert cut.returncode == 2, cut.stdout + cut.stderr
    provisioned, refused = Records(records_db, create=False).history(bed.unit.serial)
    assert (provisioned["outcome"], provisioned["details"]["bed_id"], provisioned["operator"]) == (
        "provisioned",
        3,
        "ana",
    )
    assert set(provisioned["details"]) == {"sanctuary_id", "bed_id", "key_id"}  # never the key
    assert (refused["outcome"], refused["status"], refused["reason"]) == ("refused", "refused", error_of(cut))


@pytest.mark.cpu
def test_records_api_and_errors(tmp_path, records_db):
    records = Records(records_db)
    records.record("5c0a00000001", "calibrate", "pass", station="bath-1", details={"max_error_c": 0.04})
    assert records.history("5c0a00000001")[0]["details"] == {"max_error_c": 0.04}
    missing = soma("history", "nobody", "--db", records_db)
    assert missing.returncode == 1 and "no records of unit nobody" in missing.stderr


@pytest.mark.cpu
def test_a_bad_database_is_one_line(tmp_path):
    regular = tmp_path / "a-file"
    regular.write_text("")
    for args in (
        ("units", "--db", "nosuchdialect://x/y"),
        ("units", "--db", f"postgresql://soma@/soma?host={tmp_path}/no-server"),
        ("history", "5c0a00000001", "--db", "postgresql://soma@localhost:1/soma?connect_timeout=3"),
        ("flash", "--port", "/dev/null", "--db", str(regular / "records.db")),
    ):
        result = soma(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert error_of(result).startswith("traceability database"), result.stderr


@pytest.mark.cpu
def test_reading_a_database_that_is_not_there_creates_nothing(tmp_path):
    typo = tmp_path / "typo.db"
    for args in (("units",), ("history", "5c0a00000001")):
        result = soma(*args, "--db", str(typo))
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "no traceability database at" in result.stderr and "--db" in result.stderr
    assert not typo.exists()


@pytest.mark.cpu
def test_reading_a_database_without_the_records_is_one_line(tmp_path):
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("create table other (x)").connection.commit()
    result = soma("units", "--db", str(foreign))
    assert result.returncode == 2 and "cannot read the records" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
