"""Traceability: every flash, calibration and bench run, per unit, in a database.

SQLite by default (a file; `SOMA_DB` or `--db` may name another); any SQLAlchemy URL for
a server database shared by a factory's stations. One table of units (first and last
seen, last firmware) and one of runs (what, when, where, by whom, the outcome and its
details as JSON).
"""

import json
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, create_engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from soma.errors import SomaError

DEFAULT_PATH = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "soma" / "soma.db"


class Base(DeclarativeBase):
    pass


class Unit(Base):
    __tablename__ = "units"
    serial: Mapped[str] = mapped_column(String(32), primary_key=True)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    firmware_hash: Mapped[str] = mapped_column(String(32), default="")


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    serial: Mapped[str] = mapped_column(ForeignKey("units.serial"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # flash | calibrate | bench
    outcome: Mapped[str] = mapped_column(String(32))
    firmware_hash: Mapped[str] = mapped_column(String(32), default="")
    station: Mapped[str] = mapped_column(String(64))
    operator: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)


class UnitRow(TypedDict):
    serial: str
    first_seen: str
    last_seen: str
    firmware_hash: str


class RunRow(TypedDict):
    kind: str
    outcome: str
    firmware_hash: str
    station: str
    operator: str
    at: str
    details: dict[str, object]


def database_url(db: str | None = None) -> str:
    """A SQLAlchemy URL from --db (a URL or a file path), SOMA_DB, or the default file."""
    value = db or os.environ.get("SOMA_DB") or str(DEFAULT_PATH)
    return value if "://" in value else f"sqlite:///{value}"


class Records:
    """The traceability database. `create`: make it (and its tables) if missing, as the
    commands that record do; the reading commands pass False, so a mistyped --db is an
    error rather than a new empty database."""

    def __init__(self, db: str | None = None, *, create: bool = True) -> None:
        url = database_url(db)
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            elif not path.is_file():
                raise SomaError(
                    f"no traceability database at {path}: check --db or SOMA_DB "
                    "(the first flash, calibration or bench run creates it)"
                )
        try:
            self._engine = create_engine(url)
            if create:
                Base.metadata.create_all(self._engine)
        except SQLAlchemyError as exc:
            raise SomaError(f"traceability database {url}: {exc.__class__.__name__}: {exc.args[0]}") from None

    def record(
        self,
        serial: str,
        kind: str,
        outcome: str,
        firmware_hash: str = "",
        station: str | None = None,
        operator: str = "",
        details: Mapping[str, object] | None = None,
    ) -> None:
        now = datetime.now(UTC)
        try:
            with Session(self._engine) as session, session.begin():
                unit = session.get(Unit, serial)
                if unit is None:
                    unit = Unit(serial=serial, first_seen=now, last_seen=now, firmware_hash=firmware_hash)
                    session.add(unit)
                unit.last_seen = now
                if firmware_hash:
                    unit.firmware_hash = firmware_hash
                session.add(
                    Run(
                        serial=serial,
                        kind=kind,
                        outcome=outcome,
                        firmware_hash=firmware_hash,
                        station=station or socket.gethostname(),
                        operator=operator,
                        at=now,
                        details=json.loads(json.dumps(details or {}, default=str)),
                    )
                )
        except SQLAlchemyError as exc:
            raise SomaError(f"traceability database: {exc.__class__.__name__}: {exc.args[0]}") from None

    def units(self) -> list[UnitRow]:
        with self._reading() as session:
            return [
                UnitRow(
                    serial=u.serial,
                    first_seen=u.first_seen.isoformat(),
                    last_seen=u.last_seen.isoformat(),
                    firmware_hash=u.firmware_hash,
                )
                for u in session.scalars(select(Unit).order_by(Unit.serial))
            ]

    def history(self, serial: str) -> list[RunRow]:
        with self._reading() as session:
            runs = session.scalars(select(Run).where(Run.serial == serial).order_by(Run.id))
            return [
                RunRow(
                    kind=r.kind,
                    outcome=r.outcome,
                    firmware_hash=r.firmware_hash,
                    station=r.station,
                    operator=r.operator,
                    at=r.at.isoformat(),
                    details=r.details,
                )
                for r in runs
            ]

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        """A session to read in; a database without the records' tables (or unreachable) is
        one line, not a traceback."""
        try:
            with Session(self._engine) as session:
                yield session
        except SQLAlchemyError as exc:
            url = self._engine.url.render_as_string(hide_password=True)
            raise SomaError(
                f"traceability database {url}: cannot read the records ({exc.__class__.__name__})"
            ) from None
