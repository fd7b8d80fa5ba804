"""Database plumbing: the declarative base, column types, engine and sessions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    create_engine,
    event,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

# Named constraints make migrations reviewable and reversible on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# How long a new PostgreSQL connection may take before the request is answered 503.
CONNECT_TIMEOUT_SECONDS = 5

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """An instant, stored in UTC: timestamptz on PostgreSQL, naive UTC text on SQLite.

    Values must be timezone-aware going in and always come back aware in UTC,
    so comparisons never mix local and UTC times.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC instant is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run beside the writer; foreign keys are off by default in SQLite."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for `url`, tuned for its dialect."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _tune_sqlite)
        # Let SQLAlchemy, not pysqlite, start transactions, and take the write lock at
        # BEGIN: a transaction that reads and then writes would otherwise fail with
        # SQLITE_BUSY when another writer committed in between, instead of waiting.
        event.listen(engine, "connect", _disable_pysqlite_transactions)
        event.listen(engine, "begin", _begin_sqlite)
        return engine
    # No pre-ping: it would cost a round trip per request. A connection lost to a
    # server restart fails one request with a 503 (service/errors.py), and SQLAlchemy
    # then replaces every pooled connection made before the loss. A server that takes
    # the connection but never answers (hung, or a dropped route) fails it too, after
    # CONNECT_TIMEOUT_SECONDS, instead of holding the request thread forever.
    return create_engine(
        url,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
    )


def _begin_sqlite(connection: Any) -> None:
    # A reader needs no write lock: in WAL mode its first read fixes its snapshot.
    reading = connection.get_execution_options().get("read_only", False)
    connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


def _disable_pysqlite_transactions(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit if the block succeeds, roll back if it raises."""
    with factory() as session, session.begin():
        yield session


class Database:
    """The engine and session factory of one app, kept in `app.extensions`."""

    def __init__(self, url: str):
        self.engine = make_engine(url)
        self.sessions = make_session_factory(self.engine)

    def transaction(self) -> Any:
        """A session in one transaction, committed when the block succeeds."""
        return unit_of_work(self.sessions)

    @contextmanager
    def autocommitting(self) -> Iterator[Connection]:
        """A connection on which each statement commits on its own.

        For a path whose every write is one statement: it saves the round trips
        of BEGIN and COMMIT. SQLite gets one short transaction instead.
        """
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as connection:
                yield connection.execution_options(isolation_level="AUTOCOMMIT")
        else:
            with self.engine.begin() as connection:
                yield connection

    @contextmanager
    def looking_up(self) -> Iterator[Session]:
        """A session that only reads and needs no snapshot across statements (a key, a page).

        On SQLite it does not take the write lock (a plain session's BEGIN IMMEDIATE
        would wait behind every writer); on PostgreSQL it costs nothing extra.
        """
        with self.sessions() as session:
            if self.engine.dialect.name == "sqlite":
                session.connection(execution_options={"read_only": True})
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session whose statements all see one snapshot of the data; it writes nothing."""
        with self.sessions() as session:
            if self.engine.dialect.name == "postgresql":
                options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
            else:
                options = {"read_only": True}
            session.connection(execution_options=options)
            yield session
