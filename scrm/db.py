"""SQLAlchemy 2 base, column types, engine and session handling; services flush, the edge commits."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    DateTime,
    Engine,
    Executable,
    Integer,
    MetaData,
    Select,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from scrm.clock import utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores it naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # A naive datetime is ambiguous; refusing it keeps local-time bugs out of the data.
            raise ValueError("naive datetime given to a UTCDateTime column; use scrm.clock.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: JSON that is JSONB on PostgreSQL.
JSONType = JSON().with_variant(JSONB(), "postgresql")
#: An integer primary key that is BIGINT on PostgreSQL and a rowid alias on SQLite.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")

intpk = Annotated[int, mapped_column(BigIntPK, primary_key=True, autoincrement=True)]
created_at = Annotated[datetime, mapped_column(UTCDateTime(), default=utcnow, nullable=False)]


class Base(DeclarativeBase):
    """Declarative base of every scrm model; constraint names come from the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType, list[Any]: JSONType}


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the settings scrm relies on for the given backend."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
        _configure_sqlite(engine)
        return engine
    # No pre-ping by default: its SELECT 1 is a round trip on every checkout, a third of a callback's database
    # time. Connections are recycled before PostgreSQL or a proxy drops them idle; a connection found dead
    # mid-request invalidates the pool (SQLAlchemy does this on a disconnect error), so one request fails.
    kwargs.setdefault("pool_pre_ping", False)
    kwargs.setdefault("pool_recycle", 1800)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    engine = create_engine(url, **kwargs)
    # A forked child (rq's forking worker) must not reuse the parent's sockets.
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's implicit transactions break SAVEPOINT; take control of BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")


class Database:
    """An engine and the session factory built on it; one per app (or per test connection)."""

    def __init__(self, bind: Engine | Connection, *, info: dict[str, Any] | None = None) -> None:
        self.bind = bind
        options: dict[str, Any] = {"expire_on_commit": False, "info": dict(info or {})}
        if isinstance(bind, Connection):
            # Tests bind every session to one connection inside an outer transaction; each
            # session commit then releases a savepoint and the test's rollback undoes it all.
            options["join_transaction_mode"] = "create_savepoint"
        self.sessionmaker: sessionmaker[Session] = sessionmaker(bind=bind, **options)
        self._compiled: dict[Executable, tuple[str, dict[str, Any]]] = {}
        self._autocommit: Engine | None = None

    @property
    def engine(self) -> Engine:
        return self.bind if isinstance(self.bind, Engine) else self.bind.engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def autocommit_writes(self) -> bool:
        """Whether a request whose only write is one statement may run it in autocommit (PostgreSQL on an engine).

        One statement is one transaction, committed before execute returns, so this saves the BEGIN and COMMIT
        round trips without weakening durability. Sessions bound to a test's outer transaction cannot.
        """
        return isinstance(self.bind, Engine) and self.dialect == "postgresql"

    def execute_autocommit(self, statement: Executable, params: dict[str, Any]) -> Any:
        """Run one statement in autocommit on a pooled connection; its first column of its first row, or None.

        For a hot path whose only write is one statement (one statement is one transaction, committed before this
        returns): it skips the ORM session and SQLAlchemy's execution layer, a third of a WeChat callback's CPU.
        The statement is compiled once per Database; `params` go to the driver as they are, without SQLAlchemy's
        type processing, so pass values the driver adapts (aware datetimes, str, int, None). A connection found
        dead (no pre-ping) is dropped from the pool and the statement runs once more on a fresh one.
        Only where `autocommit_writes` is true.
        """
        sql, constants = self._compile(statement)
        engine = self._autocommit_engine()
        dialect = engine.dialect
        for attempt in (1, 2):
            pooled = engine.raw_connection()
            driver = pooled.driver_connection
            try:
                with driver.cursor() as cursor:
                    cursor.execute(sql, {**constants, **params})
                    row = cursor.fetchone()
                return row[0] if row else None
            except dialect.loaded_dbapi.Error as error:
                if attempt == 2 or not dialect.is_disconnect(error, driver, None):
                    raise
                pooled.invalidate()
            finally:
                pooled.close()
        return None

    def _autocommit_engine(self) -> Engine:
        # A pool of its own whose connections stay in autocommit: no switching back and forth per request.
        if self._autocommit is None:
            self._autocommit = make_engine(
                self.engine.url.render_as_string(hide_password=False),
                isolation_level="AUTOCOMMIT",
                pool_reset_on_return=None,
                pool_size=5,
            )
        return self._autocommit

    def _compile(self, statement: Executable) -> tuple[str, dict[str, Any]]:
        compiled = self._compiled.get(statement)
        if compiled is None:
            clause = statement.compile(dialect=self.engine.dialect)
            # Literal values (kinds, statuses...) are bound once here; the named parameters come with each call.
            constants = {name: bind.value for name, bind in clause.binds.items() if bind.value is not None}
            compiled = self._compiled[statement] = (str(clause), constants)
        return compiled

    def session(self) -> Session:
        """A new session; the caller owns commit and close."""
        return self.sessionmaker()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error (for jobs and CLI commands)."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        if isinstance(self.bind, Engine):
            self.bind.dispose()
        if self._autocommit is not None:
            self._autocommit.dispose()


def paginate(session: Session, query: Select[Any], *, limit: int, offset: int) -> tuple[list[Any], int]:
    """One page of `query`'s rows (ordered as the query says) and the total count of its matches."""
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    return list(session.scalars(query.limit(limit).offset(offset))), total
