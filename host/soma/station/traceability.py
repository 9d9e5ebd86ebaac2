"""Traceability: every flash, calibration, bench run and provisioning of every unit, its
failures and refusals included, in a database shared by a factory's stations.

SQLite by default (a file; `SOMA_DB` or `--db` may name another), or PostgreSQL
(`postgresql://user@host/db`, through psycopg 3); any other SQLAlchemy URL is tried as
given. Two tables: units (first and last seen, the firmware last recorded as running) and
runs, one row per recorded event, never changed once written: the stage (`kind`: flash,
calibrate, bench, provision), its outcome word, its status (ok, failed, refused, or
started for a flash under way), its scope (a bench cut down with --only is "partial"),
the reason in words, where, when, by whom, and its details as JSON.

The schema is kept by Alembic migrations (soma/station/migrations), applied as a database
is opened, under a lock (SQLite: its write lock, taken with BEGIN IMMEDIATE; PostgreSQL:
an advisory lock), so stations that open a new database at the same time create it once.
A database written by a soma from before the migrations is stamped and upgraded in place.
"""

import json
import os
import socket
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping, make_url
from sqlalchemy.exc import SQLAlchemyError

from soma.errors import SomaError, one_line
from soma_protocol.enums import BootState

if TYPE_CHECKING:
    from soma.link.session import UnitInfo

DEFAULT_PATH = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "soma" / "soma.db"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
LEGACY_REVISION = "0001"  # the schema of the soma before migrations (create_all)
MIGRATION_LOCK = 0x50AA_7AC3  # PostgreSQL advisory lock key: "soma records"
BUSY_TIMEOUT_S = 60.0  # SQLite: how long a writer waits for another's transaction
CONNECT_TIMEOUT_S = 10  # PostgreSQL: how long to wait for the server to answer

STAGES = ("flash", "calibrate", "bench", "provision")
# Each outcome word and the status it means.
STATUS = {
    "installed": "ok",
    "unchanged": "ok",
    "restarted": "ok",  # unchanged, its firmware stopped at the REPL and restarted
    "pass": "ok",
    "provisioned": "ok",
    "started": "started",
    "rolled_back": "failed",
    "interrupted": "failed",
    "failed": "failed",
    "fail": "failed",
    "aborted": "failed",
    "refused": "refused",
}

metadata = MetaData()
units_table = Table(
    "units",
    metadata,
    Column("serial", String(32), primary_key=True),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("firmware_hash", String(32), nullable=False),
)
runs_table = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("serial", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("follows", Integer),
    Column("firmware_hash", String(32), nullable=False),
    Column("station", String(64), nullable=False),
    Column("operator", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("details", JSON, nullable=False),
)


class RunRow(TypedDict):
    id: int
    kind: str
    outcome: str
    status: str
    scope: str
    reason: str
    follows: int | None
    firmware_hash: str
    station: str
    operator: str
    at: str
    details: dict[str, object]


class UnitRow(TypedDict):
    serial: str
    first_seen: str
    last_seen: str
    firmware_hash: str
    stages: dict[str, RunRow | None]  # the latest run of each stage (bench: the latest full one)


def database_url(db: str | None = None) -> str:
    """A SQLAlchemy URL from --db (a URL or a file path), SOMA_DB, or the default file;
    postgresql:// means psycopg 3 (SQLAlchemy's own default is psycopg2)."""
    value = db or os.environ.get("SOMA_DB") or str(DEFAULT_PATH)
    if "://" not in value:
        return f"sqlite:///{value}"
    for scheme in ("postgresql://", "postgres://"):
        if value.startswith(scheme):
            return "postgresql+psycopg://" + value.removeprefix(scheme)
    return value


class Records:
    """The traceability database. `create`: make it (and its tables) if missing, as the
    commands that record do; the reading commands pass False, so a mistyped --db is an
    error rather than a new empty database. Either way a database of an older schema is
    upgraded in place."""

    def __init__(self, db: str | None = None, *, create: bool = True) -> None:
        url = database_url(db)
        self._shown = url
        try:
            parsed = make_url(url)
            # As the user wrote it: postgresql://, not the driver's name.
            self._shown = parsed.render_as_string(hide_password=True).replace("postgresql+psycopg://", "postgresql://")
            if parsed.get_backend_name() == "sqlite":
                self._engine = _sqlite_engine(url, parsed.database or "", create)
            elif parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
                # A server that does not answer is an error in seconds, not the TCP stack's minutes.
                self._engine = create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
            else:
                self._engine = create_engine(url)
            self._migrate(create)
        except SomaError:
            raise
        except ImportError as exc:
            raise SomaError(
                f"traceability database {self._shown}: its driver {exc.name or ''} is not installed "
                "(psycopg for PostgreSQL: pip install 'psycopg[binary]', as `make setup` does)"
            ) from None
        except (SQLAlchemyError, OSError) as exc:
            raise SomaError(f"traceability database {self._shown}: {_cause(exc)}") from None

    # ---- writing
    def record(
        self,
        serial: str,
        kind: str,
        outcome: str,
        firmware_hash: str = "",
        station: str | None = None,
        operator: str = "",
        details: Mapping[str, object] | None = None,
        *,
        scope: str = "full",
        reason: str = "",
        follows: int | None = None,
    ) -> int:
        """Add one run (its status follows from `outcome`, see STATUS); return its id. The
        unit's firmware is the run's only when the run ended ok."""
        with self._writing() as connection:
            return self._insert(
                connection, serial, kind, outcome, firmware_hash, station, operator, details, scope, reason, follows
            )

    def record_quietly(self, serial: str, kind: str, outcome: str, *args: Any, **kwargs: Any) -> None:
        """record(), for a failure on its way to the user: a database that fails too is a
        warning on stderr and never hides the failure being reported."""
        try:
            self.record(serial, kind, outcome, *args, **kwargs)
        except SomaError as exc:
            print(f"soma: warning: {kind} {outcome} of {serial} not recorded: {exc}", file=sys.stderr)

    @contextmanager
    def stage(
        self, kind: str, failure: str, station: str | None, operator: str = "", scope: str = "full"
    ) -> Iterator["Stage"]:
        """A stage of one unit: the block tells the unit it met (Stage.met) and what came of
        it (Stage.done); a SomaError leaving the block is recorded as `failure` with the
        error as the reason (once the unit is known), then goes on to the user."""
        stage = Stage(self, kind, station or socket.gethostname(), operator, scope)
        try:
            yield stage
        except SomaError as exc:
            if stage.serial and not stage.finished:
                self.record_quietly(
                    stage.serial,
                    kind,
                    failure,
                    stage.firmware_hash,
                    stage.station,
                    operator,
                    {"error": str(exc)},
                    scope=scope,
                    reason=one_line(exc),
                    follows=stage.started,
                )
            raise

    def resolve_unfinished_flash(self, info: "UnitInfo", station: str, operator: str = "") -> list[int]:
        """A flash of this unit that started but was never recorded as finished (the host
        died): decided now from what the unit runs. Its firmware, confirmed: installed;
        rolled back: rolled_back; another firmware: interrupted; a trial still
        running: left open. An older unfinished flash that a later one overtook is
        interrupted. Returns the ids of the runs recorded."""
        found = "found at next contact"
        recorded: list[int] = []
        with self._writing() as connection:
            finishing = runs_table.alias("finishing")
            unfinished = connection.execute(
                select(runs_table.c.id, runs_table.c.firmware_hash)
                .where(runs_table.c.serial == info.serial, runs_table.c.kind == "flash")
                .where(runs_table.c.status == "started")
                .where(~select(finishing.c.id).where(finishing.c.follows == runs_table.c.id).exists())
                .order_by(runs_table.c.id)
                .with_for_update()
            ).all()
            for index, (run_id, wanted) in enumerate(unfinished):
                details = {"unit_firmware_hash": info.firmware_hash, "boot_state": _state_name(info.boot_state)}
                if index < len(unfinished) - 1:
                    outcome, reason = "interrupted", f"{found}: a later flash of this unit started after it"
                elif info.boot_state == BootState.confirmed and info.firmware_hash == wanted:
                    outcome, reason = "installed", f"{found}: the unit runs this flash's firmware, confirmed"
                elif info.boot_state == BootState.rolled_back:
                    outcome, reason = "rolled_back", f"{found}: the unit rolled back to its previous firmware"
                elif info.boot_state == BootState.trial:
                    continue  # the new firmware may still confirm itself
                else:
                    running = f"{info.firmware_hash} ({_state_name(info.boot_state)})"
                    outcome, reason = "interrupted", f"{found}: the unit runs {running}, not this flash's firmware"
                recorded.append(
                    self._insert(
                        connection,
                        info.serial,
                        "flash",
                        outcome,
                        wanted if outcome == "installed" else info.firmware_hash,
                        station,
                        operator,
                        details,
                        "full",
                        reason,
                        run_id,
                    )
                )
        return recorded

    # ---- reading
    def units(self) -> list[UnitRow]:
        """Every unit with the latest run of each stage: a partial bench never stands for
        the unit's bench verdict while a full one exists."""
        latest = select(func.max(runs_table.c.id)).group_by(runs_table.c.serial, runs_table.c.kind, runs_table.c.scope)
        with self._reading() as connection:
            found = connection.execute(select(units_table).order_by(units_table.c.serial)).mappings().all()
            runs = connection.execute(
                select(runs_table).where(runs_table.c.id.in_(latest)).order_by(runs_table.c.id)
            ).mappings()
            stages: dict[str, dict[str, RunRow | None]] = {unit["serial"]: dict.fromkeys(STAGES) for unit in found}
            for run in runs:
                row, per_unit = _run_row(run), stages[run["serial"]]
                shown = per_unit.get(row["kind"])
                if shown is None or _stands_over(row, shown):
                    per_unit[row["kind"]] = row
            return [
                UnitRow(
                    serial=unit["serial"],
                    first_seen=unit["first_seen"].isoformat(),
                    last_seen=unit["last_seen"].isoformat(),
                    firmware_hash=unit["firmware_hash"],
                    stages=stages[unit["serial"]],
                )
                for unit in found
            ]

    def latest(self, serial: str) -> dict[str, RunRow | None]:
        """The run that stands for each stage of one unit, as units() shows it (None: never
        run): what `soma station` resumes from."""
        stages: dict[str, RunRow | None] = dict.fromkeys(STAGES)
        for run in self.history(serial):
            shown = stages.get(run["kind"])
            if shown is None or _stands_over(run, shown):
                stages[run["kind"]] = run
        return stages

    def history(self, serial: str) -> list[RunRow]:
        with self._reading() as connection:
            runs = connection.execute(
                select(runs_table).where(runs_table.c.serial == serial).order_by(runs_table.c.id)
            ).mappings()
            return [_run_row(run) for run in runs]

    # ---- the database
    def _insert(
        self,
        connection: Connection,
        serial: str,
        kind: str,
        outcome: str,
        firmware_hash: str,
        station: str | None,
        operator: str,
        details: Mapping[str, object] | None,
        scope: str,
        reason: str,
        follows: int | None,
    ) -> int:
        status = STATUS[outcome]
        now = datetime.now(UTC)
        new_unit = {"serial": serial, "first_seen": now, "last_seen": now, "firmware_hash": ""}
        # Stations may meet a new unit at once: the first insert wins, the others see it.
        insert = (postgresql if connection.dialect.name == "postgresql" else sqlite).insert(units_table)
        connection.execute(insert.values(new_unit).on_conflict_do_nothing(index_elements=["serial"]))
        seen: dict[str, object] = {"last_seen": now}
        if status == "ok" and firmware_hash:
            seen["firmware_hash"] = firmware_hash
        connection.execute(update(units_table).where(units_table.c.serial == serial).values(seen))
        row = {
            "serial": serial,
            "kind": kind,
            "outcome": outcome,
            "status": status,
            "scope": scope,
            "reason": reason,
            "follows": follows,
            "firmware_hash": firmware_hash,
            "station": station or socket.gethostname(),
            "operator": operator,
            "at": now,
            "details": json.loads(json.dumps(details or {}, default=str)),
        }
        inserted = connection.execute(runs_table.insert().values(row)).inserted_primary_key
        assert inserted is not None, "runs has an integer primary key"
        return int(inserted[0])

    def _migrate(self, create: bool) -> None:
        """Bring the schema to the newest revision under the migration lock; a database
        without soma's records is created only with `create`."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self._engine.begin() as connection:  # SQLite: BEGIN IMMEDIATE, the write lock
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            tables = set(inspect(connection).get_table_names())
            config.attributes["connection"] = connection
            if "alembic_version" not in tables:
                if {"units", "runs"} <= tables:
                    command.stamp(config, LEGACY_REVISION)
                elif not create:
                    raise SomaError(
                        f"traceability database {self._shown}: cannot read the records (no soma records in it)"
                    )
            command.upgrade(config, "head")

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        try:
            with self._engine.begin() as connection:
                yield connection
        except SQLAlchemyError as exc:
            raise SomaError(f"traceability database {self._shown}: {_cause(exc)}") from None

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A connection to read on; a database without the records' tables (or unreachable)
        is one line, not a traceback."""
        try:
            with self._engine.connect() as connection:
                yield connection
        except SQLAlchemyError as exc:
            raise SomaError(
                f"traceability database {self._shown}: cannot read the records ({exc.__class__.__name__})"
            ) from None


class Stage:
    """One stage of one unit under way (see Records.stage)."""

    def __init__(self, records: Records, kind: str, station: str, operator: str, scope: str) -> None:
        self.records, self.kind, self.station, self.operator, self.scope = records, kind, station, operator, scope
        self.serial = ""
        self.firmware_hash = ""  # what the unit ran when met
        self.started: int | None = None  # the id of this stage's "started" run
        self.finished = False

    def met(self, info: "UnitInfo | None") -> None:
        """The unit answered (None: no firmware did): known from now on, and a flash of it
        that a dead host never finished is decided first."""
        if info is None:
            return
        self.serial, self.firmware_hash = info.serial, info.firmware_hash
        self.records.resolve_unfinished_flash(info, self.station, self.operator)

    def start(self, firmware_hash: str) -> None:
        """The stage begins changing the unit (a flash's first write) towards `firmware_hash`."""
        if self.serial:
            self.started = self.records.record(
                self.serial, self.kind, "started", firmware_hash, self.station, self.operator, scope=self.scope
            )

    def done(
        self,
        outcome: str,
        firmware_hash: str = "",
        details: Mapping[str, object] | None = None,
        *,
        serial: str = "",
        reason: str = "",
    ) -> None:
        """What came of the stage (a unit that was blank when met is named by `serial`)."""
        self.finished = True
        self.records.record(
            serial or self.serial,
            self.kind,
            outcome,
            firmware_hash or self.firmware_hash,
            self.station,
            self.operator,
            details,
            scope=self.scope,
            reason=reason,
            follows=self.started,
        )


def _sqlite_engine(url: str, path: str, create: bool) -> Engine:
    """An engine on a SQLite file: WAL (readers never wait for a writer), a busy timeout,
    and every transaction begun IMMEDIATE, holding the write lock from its first statement,
    so two writers never deadlock upgrading their read locks."""
    file = Path(path)
    if create:
        file.parent.mkdir(parents=True, exist_ok=True)
    elif not file.is_file():
        raise SomaError(
            f"no traceability database at {file}: check --db or SOMA_DB "
            "(the first flash, calibration, bench run or provisioning creates it)"
        )
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _connect(connection: Any, _record: object) -> None:
        connection.isolation_level = None  # the driver's own BEGINs off: ours below
        connection.execute("PRAGMA journal_mode=WAL")

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _run_row(run: RowMapping) -> RunRow:
    return RunRow(
        id=int(run["id"]),
        kind=run["kind"],
        outcome=run["outcome"],
        status=run["status"],
        scope=run["scope"],
        reason=run["reason"],
        follows=run["follows"],
        firmware_hash=run["firmware_hash"],
        station=run["station"],
        operator=run["operator"],
        at=run["at"].isoformat(),
        details=run["details"],
    )


def _stands_over(run: RunRow, shown: RunRow) -> bool:
    """Whether `run` stands for its stage over `shown`: a full bench over any other scope,
    otherwise the later."""
    if run["kind"] == "bench" and (run["scope"] == "full") != (shown["scope"] == "full"):
        return run["scope"] == "full"
    return run["id"] > shown["id"]


def _state_name(state: BootState | int) -> str:
    return state.name if isinstance(state, BootState) else str(state)


def _cause(exc: BaseException) -> str:
    """A database failure in words: the driver's first line, without SQLAlchemy's link."""
    cause = getattr(exc, "orig", None) or exc
    return f"{type(cause).__name__}: {one_line(cause)}"
