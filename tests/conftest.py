"""Test fixtures. Every test that touches the database runs on SQLite and on PostgreSQL.

Except a test marked `one_backend`, whose outcome no database can change: it runs on
SQLite. Each backend has one migrated database and one app for the session; `app`
gives a test that app as new (remembered reports and senders forgotten) and empties
the tables the test wrote afterwards. A test that must change the app itself takes
`fresh_app`; a class of read-only tests can share one set-up through `class_api`.

PostgreSQL comes from TEST_POSTGRES_URL (default: the local server, database `test`);
the tests create and migrate their own databases there. When it is unreachable:
under CI (CI=true) or REQUIRE_POSTGRES=1 the run fails; otherwise only the SQLite
half runs and the summary says loudly that PostgreSQL was not tested.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Table, create_engine, insert, text
from sqlalchemy.engine import make_url

from service.app import create_app
from service.auth import create_key
from service.change_log import ALL_TIME
from service.config import Settings
from service.db import Base, Database
from service.metrics import ReportCache
from service.migrate import upgrade
from service.models import DataChange
from service.webhooks.sender_cache import SenderCache

POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ("sqlite", "postgresql")
# SECRETS_KEY of the test settings (a Fernet key made for the tests).
TEST_SECRETS_KEY = "cnqmhWvYa1lHxzqF1spHni1r2_TtJe3C99v10RaQD5o="
_postgres_problem: str | None = None


def _postgres_required() -> bool:
    return (
        os.environ.get("CI", "").lower() in ("1", "true")
        or os.environ.get("REQUIRE_POSTGRES") == "1"
    )


def _check_postgres() -> str | None:
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means "not available"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


def pytest_configure(config: pytest.Config) -> None:
    global _postgres_problem
    _postgres_problem = _check_postgres()
    if _postgres_problem and _postgres_required():
        pytest.exit(
            f"PostgreSQL is required (CI) but unreachable at {POSTGRES_URL}: {_postgres_problem}",
            returncode=3,
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without PostgreSQL (and outside CI), run the SQLite half only."""
    if not _postgres_problem:
        return
    kept = [i for i in items if "[postgresql" not in i.nodeid and "-postgresql" not in i.nodeid]
    deselected = [i for i in items if i not in kept]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _postgres_problem:
        terminalreporter.write_sep(
            "!",
            f"PostgreSQL was NOT tested ({POSTGRES_URL} unreachable: {_postgres_problem}); "
            "only the SQLite half ran",
            red=True,
            bold=True,
        )


def _postgres_database(name: str) -> str:
    """URL of a fresh, empty PostgreSQL database `name` on the test server."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def empty_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Make a new, empty database of a backend, for tests that migrate it themselves.

    PostgreSQL databases made here are dropped when the session ends.
    """
    created: list[str] = []

    def make(backend: str, name: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp(name) / 'db.sqlite3'}"
        created.append(f"cm_{name}_{os.getpid()}")
        return _postgres_database(created[-1])

    yield make
    if created:
        admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            for database in created:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


# For a test whose outcome no database can change (a request refused before any
# statement but the key's look-up, a rule of the HTTP layer): one backend is enough.
# The backend is SQLite, so that it runs where PostgreSQL is missing too.
one_backend = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(backend: str, empty_database_url: Any) -> str:
    """A database of the backend, migrated to head once per session."""
    url = empty_database_url(backend, "suite")
    database = Database(url)
    upgrade(database.engine)
    database.engine.dispose()
    return str(url)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    # No mapper thread: the test client maps stored deliveries right after each answer
    # (tests/webhook_support.py); tests/test_webhook_mapper.py runs the thread itself.
    return Settings(
        database_url=database_url,
        reporting_currency="USD",
        max_body_bytes=256_000,
        webhook_mapper="off",
        secrets_key=TEST_SECRETS_KEY,
    )


@pytest.fixture(scope="session")
def served_app(settings: Settings) -> Iterator[Flask]:
    """One app per backend for the whole session: building one costs a test 40 ms.

    Tests get it through `app`, which gives each a clean state; a test that must
    change the app itself (add a route) makes its own with `fresh_app`.
    """
    app = _test_app(settings)
    yield app
    app.extensions["customer_metrics.db"].engine.dispose()


@pytest.fixture
def app(served_app: Flask) -> Iterator[Flask]:
    """The backend's app, as new: empty tables, no remembered reports or senders."""
    _forget_remembered(served_app)
    yield served_app
    database: Database = served_app.extensions["customer_metrics.db"]
    _empty_tables(database)
    # A new pool for the next test: no connection a test ended (a PostgreSQL restart
    # the test played) or left a temporary table on.
    database.engine.dispose()


@pytest.fixture
def fresh_app(settings: Settings) -> Iterator[Flask]:
    """An app of its own, for a test that changes the app (its routes)."""
    app = _test_app(settings)
    yield app
    _empty_tables(app.extensions["customer_metrics.db"])
    app.extensions["customer_metrics.db"].engine.dispose()


def _test_app(settings: Settings) -> Flask:
    from tests.webhook_support import MappingClient

    app = create_app(settings)
    app.test_client_class = MappingClient
    return app


def _forget_remembered(app: Flask) -> None:
    """What a web process keeps in memory between requests, as a new process has it."""
    app.extensions["customer_metrics.senders"] = SenderCache(
        app.extensions["customer_metrics.secret_box"]
    )
    app.extensions["customer_metrics.reports"] = ReportCache(app.extensions["customer_metrics.db"])


def _empty_tables(database: Database) -> None:
    """Empty the tables a test wrote to, as a new database has them.

    DELETE on the few tables holding rows, not TRUNCATE of all: TRUNCATE's fixed cost on
    PostgreSQL (new files for every table) was most of a test's time. PostgreSQL's
    sequences all start again at 1, as SQLite's rowids do in an emptied table.
    """
    tables = [t.name for t in reversed(_emptied_tables())]
    with database.engine.begin() as connection:
        holding = set(
            connection.execute(
                text(
                    " UNION ALL ".join(
                        f"SELECT '{table}' WHERE EXISTS (SELECT 1 FROM {table})" for table in tables
                    )
                )
            ).scalars()
        )
        for table in (t for t in tables if t in holding):
            connection.execute(text(f"DELETE FROM {table}"))
        if connection.dialect.name == "postgresql":
            _restart_sequences(connection)
        # Emptied data is changed data: cached metrics of the old data must not be served.
        version = connection.execute(
            text("UPDATE data_version SET version = version + 1 RETURNING version")
        ).scalar_one()
        connection.execute(
            insert(DataChange).values(
                version=version,
                changed_from=ALL_TIME.first,
                changed_to=ALL_TIME.last,
                recorded_at=datetime.now(UTC),
            )
        )


def _emptied_tables() -> list[Table]:
    """Every table, parents first, but `data_version`: its one row counts changes on."""
    return [t for t in Base.metadata.sorted_tables if t.name != "data_version"]


def _restart_sequences(connection: Connection) -> None:
    """Every table's, also of a table the test emptied itself (as TRUNCATE RESTART IDENTITY)."""
    restarts = [
        f"setval(pg_get_serial_sequence('{t.name}', '{t.autoincrement_column.name}'), 1, false)"
        for t in _emptied_tables()
        if t.autoincrement_column is not None
    ]
    connection.execute(text(f"SELECT {', '.join(restarts)}"))


@pytest.fixture
def db(app: Flask) -> Database:
    database: Database = app.extensions["customer_metrics.db"]
    return database


@dataclass
class Keys:
    """Authorization headers for keys of each scope."""

    ingest: dict[str, str]
    read: dict[str, str]
    admin: dict[str, str]
    both: dict[str, str]


@pytest.fixture
def keys(db: Database) -> Keys:
    return _make_keys(db)


def _make_keys(db: Database) -> Keys:
    now = datetime.now(UTC)
    made: dict[str, dict[str, str]] = {}
    with db.transaction() as session:
        for name, scopes in {
            "ingest": ["ingest"],
            "read": ["read"],
            "admin": ["admin"],
            "both": ["ingest", "read"],
        }.items():
            _, key = create_key(session, name, scopes, now)
            made[name] = {"Authorization": f"Bearer {key}"}
    return Keys(**made)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class Api:
    """The API as a client sees it, with a key that may ingest and read."""

    def __init__(self, client: FlaskClient, headers: dict[str, str]):
        self.client = client
        self.headers = headers

    def post(self, path: str, items: list[dict[str, Any]]) -> Any:
        return self.client.post(path, json={"items": items}, headers=self.headers)

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, query_string=params, headers=self.headers)

    def delete(self, path: str) -> Any:
        return self.client.delete(path, headers=self.headers)


@pytest.fixture
def api(client: FlaskClient, keys: Keys) -> Api:
    return Api(client, keys.both)


@pytest.fixture(scope="class")
def class_api(served_app: Flask) -> Iterator[Api]:
    """The API for a class of tests that only read what the class stored once.

    The class's tests share its data (the point: one set-up, not one per test), so
    none of them may write; the tables are emptied after the last of them.
    """
    _forget_remembered(served_app)
    database: Database = served_app.extensions["customer_metrics.db"]
    yield Api(served_app.test_client(), _make_keys(database).both)
    _empty_tables(database)
    database.engine.dispose()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
