"""Traceability records: every flash lands in the database with the unit's serial, firmware
hash, station and operator; `soma units` and `soma history` read them back; a bad database
URL is a one-line error."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from soma.sim.sanctuary import Sanctuary
from soma.station.traceability import Records

SOMA = str(Path(sys.executable).with_name("soma"))


def soma(*args):
    return subprocess.run([SOMA, *args], capture_output=True, text=True, timeout=120)


def test_flash_is_recorded_and_read_back(tmp_path):
    db = str(tmp_path / "records.db")
    with Sanctuary(beds=1, root=tmp_path / "beds") as sanctuary:
        bed = sanctuary.beds[0]
        flashed = soma("flash", "--port", bed.port, "--db", db, "--station", "line-2", "--operator", "ana", "--json")
        assert flashed.returncode == 0, flashed.stderr
        again = soma("flash", "--port", bed.port, "--db", db, "--station", "line-2", "--json")
        assert again.returncode == 0, again.stderr
    units = json.loads(soma("units", "--db", db, "--json").stdout)
    assert [unit["serial"] for unit in units] == [bed.unit.serial]
    history = json.loads(soma("history", bed.unit.serial, "--db", db, "--json").stdout)
    assert [(run["kind"], run["outcome"], run["station"]) for run in history] == [
        ("flash", "installed", "line-2"),
        ("flash", "unchanged", "line-2"),
    ]
    assert (
        history[0]["operator"] == "ana" and history[0]["firmware_hash"] == json.loads(flashed.stdout)["firmware_hash"]
    )


def test_records_api_and_errors(tmp_path):
    records = Records(str(tmp_path / "api.db"))
    records.record("5c0a00000001", "calibrate", "pass", station="bath-1", details={"max_error_c": 0.04})
    assert records.history("5c0a00000001")[0]["details"] == {"max_error_c": 0.04}
    missing = soma("history", "nobody", "--db", str(tmp_path / "api.db"))
    assert missing.returncode == 1 and "no records of unit nobody" in missing.stderr
    bad = soma("units", "--db", "nosuchdialect://x/y")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_reading_a_database_that_is_not_there_creates_nothing(tmp_path):
    typo = tmp_path / "typo.db"
    for args in (("units",), ("history", "5c0a00000001")):
        result = soma(*args, "--db", str(typo))
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "no traceability database at" in result.stderr and "--db" in result.stderr
    assert not typo.exists()


def test_reading_a_database_without_the_records_is_one_line(tmp_path):
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("create table other (x)").connection.commit()
    result = soma("units", "--db", str(foreign))
    assert result.returncode == 2 and "cannot read the records" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
