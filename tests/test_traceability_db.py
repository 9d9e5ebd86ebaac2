"""The traceability database itself, on SQLite and on a real PostgreSQL server (conftest's
`postgres`): statuses, scopes and reasons; a partial bench never standing for a full one;
failures recorded and re-raised; a flash a dead host never finished, decided at the next
contact; a database of the schema before migrations upgraded in place; eight processes
writing to a new database at once."""

import multiprocessing
import sqlite3

import pytest
import sqlalchemy

from soma.errors import SomaError
from soma.link.session import UnitInfo
from soma.station.traceability import Records, database_url
from soma_protocol import codec
from soma_protocol.enums import BootState

pytestmark = pytest.mark.cpu

SERIAL = "5c0a00000001"
FIRMWARE = bytes.fromhex("00112233445566aa")


def unit_info(firmware_hash=FIRMWARE, boot_state=BootState.confirmed, serial=SERIAL):
    """A unit's info answer as the codec decodes it off the wire."""
    given = {"unit_serial": serial.encode(), "firmware_hash": firmware_hash, "boot_state": int(boot_state)}
    given["firmware_version"] = b"1.0.0"
    names = [leaf.path for leaf in codec.MESSAGES["info_response"].fields]
    return UnitInfo(codec.decode("info_response", codec.encode("info_response", [given.get(n, 0) for n in names])))


def test_every_run_has_its_status_scope_and_reason(records_db):
    records = Records(records_db)
    records.record(SERIAL, "flash", "installed", FIRMWARE.hex(), "line-2", "ana")
    records.record(SERIAL, "calibrate", "refused", station="bath-1", reason="the unit is not in the bath")
    records.record(SERIAL, "provision", "provisioned", details={"bed_id": 3})
    runs = records.history(SERIAL)
    assert [(r["kind"], r["outcome"], r["status"], r["scope"]) for r in runs] == [
        ("flash", "installed", "ok", "full"),
        ("calibrate", "refused", "refused", "full"),
        ("provision", "provisioned", "ok", "full"),
    ]
    assert runs[1]["reason"] == "the unit is not in the bath" and runs[2]["details"] == {"bed_id": 3}
    (unit,) = records.units()
    assert unit["firmware_hash"] == FIRMWARE.hex()
    assert {stage: run and run["outcome"] for stage, run in unit["stages"].items()} == {
        "flash": "installed",
        "calibrate": "refused",
        "bench": None,
        "provision": "provisioned",
    }
    # A failure does not make its firmware the unit's.
    records.record(SERIAL, "flash", "rolled_back", "ffffffffffffffff")
    assert records.units()[0]["firmware_hash"] == FIRMWARE.hex()


def test_a_partial_bench_never_stands_for_the_full_verdict(records_db):
    records = Records(records_db)
    records.record(SERIAL, "bench", "fail", details={"steps": ["identity", "heater_left"]})
    records.record(SERIAL, "bench", "pass", scope="partial", details={"steps": ["identity"]})
    bench = records.units()[0]["stages"]["bench"]
    assert bench is not None and (bench["outcome"], bench["scope"]) == ("fail", "full")
    records.record(SERIAL, "bench", "pass")
    bench = records.units()[0]["stages"]["bench"]
    assert bench is not None and (bench["outcome"], bench["scope"]) == ("pass", "full")
    # A unit only ever partly benched shows that, as partial.
    records.record("5c0a00000002", "bench", "pass", scope="partial")
    other = records.units()[1]["stages"]["bench"]
    assert other is not None and (other["outcome"], other["scope"]) == ("pass", "partial")


def test_a_stage_that_fails_is_recorded_and_the_error_goes_on(records_db):
    records = Records(records_db)
    with pytest.raises(SomaError, match="the bath did not settle"):
        with records.stage("calibrate", "refused", "bath-1", "ana") as stage:
            stage.met(unit_info())
            raise SomaError("the bath did not settle at 42.0 degC within 900 s")
    (run,) = records.history(SERIAL)
    assert (run["kind"], run["outcome"], run["status"], run["station"], run["operator"]) == (
        "calibrate",
        "refused",
        "refused",
        "bath-1",
        "ana",
    )
    assert run["reason"] == "the bath did not settle at 42.0 degC within 900 s"
    # Before the unit answered there is nobody to record against.
    with pytest.raises(SomaError), records.stage("calibrate", "refused", "bath-1"):
        raise SomaError("/dev/ttyUSB9: no Soma unit answers")
    assert len(records.history(SERIAL)) == 1


def test_a_record_that_fails_never_hides_the_failure(records_db, capsys):
    records = Records(records_db)
    with pytest.raises(SomaError, match="the unit refused the key"):
        with records.stage("provision", "refused", "desk") as stage:
            stage.met(unit_info())
            engine = sqlalchemy.create_engine(database_url(records_db))
            with engine.begin() as connection:  # the database breaks while the unit is worked on
                connection.exec_driver_sql("DROP TABLE runs")
            engine.dispose()
            raise SomaError("the unit refused the key")
    warning = capsys.readouterr().err
    assert warning.startswith("soma: warning: provision refused of 5c0a00000001 not recorded: traceability database")
    assert len(warning.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "boot_state, running, outcome, status",
    [
        (BootState.confirmed, FIRMWARE, "installed", "ok"),
        (BootState.rolled_back, bytes(8), "rolled_back", "failed"),
        (BootState.confirmed, bytes(8), "interrupted", "failed"),
        (BootState.development, FIRMWARE, "interrupted", "failed"),
    ],
)
def test_a_flash_the_host_never_finished_is_decided_at_the_next_contact(
    records_db, boot_state, running, outcome, status
):
    records = Records(records_db)
    with records.stage("flash", "failed", "line-2") as stage:
        stage.met(unit_info(bytes(8)))
        stage.start(FIRMWARE.hex())
        # ... and the host dies here: no done(), no failure.
    (started,) = records.history(SERIAL)
    assert (started["outcome"], started["status"]) == ("started", "started")
    assert records.units()[0]["stages"]["flash"]["status"] == "started"  # type: ignore[index]
    with records.stage("bench", "aborted", "line-3") as later:
        later.met(unit_info(running, boot_state))
    found = records.history(SERIAL)[-1]
    assert (found["outcome"], found["status"], found["follows"]) == (outcome, status, started["id"])
    assert found["reason"].startswith("found at next contact: ") and found["station"] == "line-3"
    # Decided once: the next contact adds nothing.
    Records(records_db).resolve_unfinished_flash(unit_info(running, boot_state), "line-4")
    assert len(records.history(SERIAL)) == 2


def test_a_trial_still_running_leaves_the_flash_open_and_a_later_flash_closes_the_older(records_db):
    records = Records(records_db)
    first = records.record(SERIAL, "flash", "started", "aaaaaaaaaaaaaaaa")
    second = records.record(SERIAL, "flash", "started", FIRMWARE.hex())
    decided = records.resolve_unfinished_flash(unit_info(FIRMWARE, BootState.trial), "line-2")
    assert len(decided) == 1
    older = records.history(SERIAL)[-1]
    assert (older["outcome"], older["follows"]) == ("interrupted", first)
    assert "a later flash" in older["reason"]
    records.resolve_unfinished_flash(unit_info(FIRMWARE), "line-2")
    assert (records.history(SERIAL)[-1]["outcome"], records.history(SERIAL)[-1]["follows"]) == ("installed", second)


# The schema the soma before migrations made (SQLAlchemy's create_all of its ORM classes).
LEGACY_SCHEMA = {
    "sqlite": [
        """CREATE TABLE units (serial VARCHAR(32) NOT NULL, first_seen DATETIME NOT NULL,
        last_seen DATETIME NOT NULL, firmware_hash VARCHAR(32) NOT NULL, PRIMARY KEY (serial))""",
        """CREATE TABLE runs (id INTEGER NOT NULL, serial VARCHAR(32) NOT NULL, kind VARCHAR(16) NOT NULL,
        outcome VARCHAR(32) NOT NULL, firmware_hash VARCHAR(32) NOT NULL, station VARCHAR(64) NOT NULL,
        operator VARCHAR(64) NOT NULL, at DATETIME NOT NULL, details JSON NOT NULL, PRIMARY KEY (id),
        FOREIGN KEY(serial) REFERENCES units (serial))""",
        "CREATE INDEX ix_runs_serial ON runs (serial)",
    ],
    "postgresql": [
        """CREATE TABLE units (serial VARCHAR(32) NOT NULL, first_seen TIMESTAMP WITH TIME ZONE NOT NULL,
        last_seen TIMESTAMP WITH TIME ZONE NOT NULL, firmware_hash VARCHAR(32) NOT NULL, PRIMARY KEY (serial))""",
        """CREATE TABLE runs (id SERIAL NOT NULL, serial VARCHAR(32) NOT NULL, kind VARCHAR(16) NOT NULL,
        outcome VARCHAR(32) NOT NULL, firmware_hash VARCHAR(32) NOT NULL, station VARCHAR(64) NOT NULL,
        operator VARCHAR(64) NOT NULL, at TIMESTAMP WITH TIME ZONE NOT NULL, details JSON NOT NULL,
        PRIMARY KEY (id), FOREIGN KEY(serial) REFERENCES units (serial))""",
        "CREATE INDEX ix_runs_serial ON runs (serial)",
    ],
}
LEGACY_ROWS = [
    "INSERT INTO units VALUES ('5c0a00000001', '2026-01-05 10:00:00', '2026-01-05 11:00:00', 'aaaaaaaaaaaaaaaa')",
    "INSERT INTO runs (serial, kind, outcome, firmware_hash, station, operator, at, details) VALUES "
    "('5c0a00000001', 'flash', 'installed', 'aaaaaaaaaaaaaaaa', 'line-1', 'ana', '2026-01-05 10:00:00', '{}'),"
    "('5c0a00000001', 'flash', 'rolled_back', 'bbbbbbbbbbbbbbbb', 'line-1', 'ana', '2026-01-05 10:30:00', '{}'),"
    "('5c0a00000001', 'bench', 'pass', 'aaaaaaaaaaaaaaaa', 'line-1', '', '2026-01-05 11:00:00', '{\"steps\": []}')",
]


def test_a_database_of_the_schema_before_migrations_upgrades_in_place(records_db):
    url = database_url(records_db)
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        for statement in LEGACY_SCHEMA[engine.dialect.name] + LEGACY_ROWS:
            connection.exec_driver_sql(statement)
    engine.dispose()
    records = Records(records_db, create=False)  # a reading command upgrades it too
    runs = records.history(SERIAL)
    assert [(r["outcome"], r["status"], r["scope"], r["reason"]) for r in runs] == [
        ("installed", "ok", "full", ""),
        ("rolled_back", "failed", "full", ""),
        ("pass", "ok", "unknown", ""),  # a bench of then may have been partial
    ]
    assert runs[0]["operator"] == "ana" and runs[2]["details"] == {"steps": []}
    new = Records(records_db).record(SERIAL, "bench", "fail")
    assert new == 4 and records.units()[0]["stages"]["bench"]["outcome"] == "fail"  # type: ignore[index]
    assert records.units()[0]["firmware_hash"] == "aaaaaaaaaaaaaaaa"


def test_reading_never_creates_the_records(records_db):
    if "://" in records_db:
        with pytest.raises(SomaError, match="no soma records in it"):
            Records(records_db, create=False)
        engine = sqlalchemy.create_engine(database_url(records_db))
        assert sqlalchemy.inspect(engine).get_table_names() == []
        engine.dispose()
    else:
        with pytest.raises(SomaError, match="no traceability database at"):
            Records(records_db, create=False)
        sqlite3.connect(records_db).close()  # an empty file: not soma's records either
        with pytest.raises(SomaError, match="no soma records in it"):
            Records(records_db, create=False)


WRITERS = 8
STAGES_EACH = 12


def _writer(db, index, go, errors):
    """One station: open the (new) database when told, record STAGES_EACH runs of its own
    unit and as many of a unit every station shares."""
    go.wait()
    try:
        records = Records(db)
        for step in range(STAGES_EACH):
            records.record(f"own{index:02d}", "bench", "pass", station=f"s{index}", details={"step": step})
            records.record("shared", "calibrate", "fail", station=f"s{index}", details={"step": step})
    except Exception as exc:  # reported to the test, which fails on it
        errors.put(f"writer {index}: {type(exc).__name__}: {exc}")


def test_eight_stations_writing_to_a_new_database_lose_nothing(records_db):
    context = multiprocessing.get_context("spawn")
    go, errors = context.Event(), context.Queue()
    writers = [context.Process(target=_writer, args=(records_db, i, go, errors)) for i in range(WRITERS)]
    for writer in writers:
        writer.start()
    go.set()
    for writer in writers:
        writer.join(timeout=120)
    failures = [errors.get() for _ in range(errors.qsize())]
    assert not failures, failures
    assert [writer.exitcode for writer in writers] == [0] * WRITERS
    records = Records(records_db, create=False)
    assert len(records.units()) == WRITERS + 1
    shared = records.history("shared")
    assert len(shared) == WRITERS * STAGES_EACH
    assert sorted((r["station"], r["details"]["step"]) for r in shared) == sorted(
        (f"s{i}", step) for i in range(WRITERS) for step in range(STAGES_EACH)
    )
    for index in range(WRITERS):
        assert [r["details"]["step"] for r in records.history(f"own{index:02d}")] == list(range(STAGES_EACH))
