"""The background worker's loop, and the worker riding out a real PostgreSQL restart."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from service.background.loop import TaskRunner, run_until_stopped
from service.background.tasks import PeriodicTask
from service.db import Database
from service.migrate import upgrade
from tests.webhook_payloads import SHOP, SHOPIFY_SECRET, body_of, shopify_order
from tests.webhook_support import add_sender

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)
PG_PORT = 18651  # task 6's range
CLI = [sys.executable, "-c", "from service.cli import main; main()"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _database_away() -> None:
    refused = psycopg.OperationalError("connection refused\n\tIs the server running?")
    raise OperationalError("SELECT 1", {}, refused)


def test_a_failing_task_is_tried_again_less_often_and_logged_once_each_way(caplog):
    clock = FakeClock()
    outcomes = [_database_away] * 7 + [lambda: None]
    runner = TaskRunner(PeriodicTask("demo", 1.0, lambda: outcomes.pop(0)()), clock)
    with caplog.at_level(logging.INFO, logger="service.background.loop"):
        pauses = [runner.run_once() for _ in range(8)]
    assert pauses == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 1.0]
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "demo: the database is unavailable (OperationalError: connection refused); "
        "trying again, less often, until it is back",
        "demo: working again after 7 failed tries in 0 s",
    ]
    assert not any(record.exc_info for record in caplog.records)


def test_a_bug_in_a_task_logs_its_traceback_once_and_the_loop_goes_on(caplog):
    clock = FakeClock()
    runs: list[float] = []

    def buggy() -> None:
        runs.append(clock.now)
        raise ZeroDivisionError("a bug")

    with caplog.at_level(logging.INFO, logger="service.background.loop"):
        run_until_stopped(
            [PeriodicTask("buggy", 1.0, buggy)],
            keep_going=lambda: clock.now < 20,
            clock=clock,
            sleep=clock.sleep,
        )
    assert runs == [0.0, 1.0, 3.0, 7.0, 15.0]
    assert [bool(record.exc_info) for record in caplog.records] == [True]


@pytest.fixture
def restartable_postgres() -> Iterator[tuple[str, Path]]:
    """A PostgreSQL cluster of our own (never the shared server), to stop and start."""
    if PG_BIN is None:
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql")
    data = Path(tempfile.mkdtemp(prefix="cm-pg-t6-"))
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(data, "postgres")
    subprocess.run(
        [
            *as_postgres,
            str(PG_BIN / "initdb"),
            "-D",
            str(data / "db"),
            "-A",
            "trust",
            "-U",
            "postgres",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )

    def pg_ctl(*args: str) -> None:
        subprocess.run(
            [*as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(data / "db"), "-w", "-t", "60", *args],
            check=True,
            capture_output=True,
            timeout=90,
        )

    options = f"-p {PG_PORT} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl("-o", options, "-l", str(data / "log"), "start")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{PG_PORT}/postgres", data
    finally:
        subprocess.run(  # a test that failed midway may have left it stopped
            [
                *as_postgres,
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data / "db"),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            timeout=90,
        )
        shutil.rmtree(data, ignore_errors=True)


def _wait_for(condition, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.mark.parametrize("command", [["worker"], ["webhooks", "map", "--follow"]])
def test_the_worker_rides_out_a_postgresql_restart_with_one_line_and_maps_after(
    restartable_postgres, command
):
    url, data = restartable_postgres
    database = Database(url)
    upgrade(database.engine)
    add_sender(database, "shopify", SHOP, SHOPIFY_SECRET)
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    pg_ctl = [*as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(data / "db"), "-w", "-t", "60"]
    log = data / "worker.log"
    with log.open("w") as stderr:
        worker = subprocess.Popen(
            [*CLI, *command], env={**os.environ, "DATABASE_URL": url}, stderr=stderr, cwd=data
        )
    try:
        time.sleep(2)  # the worker is at work
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], check=True, timeout=90)
        time.sleep(6)  # several tries fail meanwhile
        assert worker.poll() is None, "the worker exited when the database went away"
        options = f"-p {PG_PORT} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [*pg_ctl, "-o", options, "-l", str(data / "log"), "start"], check=True, timeout=90
        )
        database.engine.dispose()
        _store_delivery(database, body_of(shopify_order(31, guest=True)))
        _wait_for(lambda: _status(database) == "processed", 40, "the delivery was not mapped")
        assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(10)
        database.engine.dispose()
    output = log.read_text()
    assert output.count("the database is unavailable") == 1, output
    assert "working again" in output
    assert "Traceback" not in output, output


def _store_delivery(database: Database, body: bytes) -> None:
    engine = create_engine(database.engine.url)
    with engine.begin() as connection:
        source = connection.execute(text("SELECT pk FROM webhook_sources")).scalar_one()
        connection.execute(
            text(
                "INSERT INTO webhook_deliveries (source_pk, delivery_key, topic, body, headers,"
                " received_at, status, attempts)"
                " VALUES (:source, 'restart-1', 'orders/create', :body, '{}', now(), 'received', 0)"
            ),
            {"source": source, "body": body},
        )
    engine.dispose()


def _status(database: Database) -> str | None:
    try:
        with database.engine.connect() as connection:
            return connection.execute(
                text("SELECT status FROM webhook_deliveries WHERE delivery_key = 'restart-1'")
            ).scalar()
    except OperationalError:
        return None


# --- the worker's own process makes the command line's checks --------------------------

WORKER_PROCESS = [sys.executable, "-m", "service.background"]  # what gunicorn's master runs


def test_the_worker_process_refuses_a_missing_sqlite_database_in_one_line_and_creates_none(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "missing.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{missing}"}

    ran = subprocess.run(WORKER_PROCESS, env=env, capture_output=True, text=True, timeout=60)

    assert ran.returncode == 1, ran.stderr
    assert f"there is no database at {missing}" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert not missing.exists()


def test_the_worker_process_refuses_a_secrets_key_that_is_not_one_in_one_line(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    upgrade(Database(url).engine)
    env = {**os.environ, "DATABASE_URL": url, "SECRETS_KEY": "not-a-key"}

    ran = subprocess.run(
        [*WORKER_PROCESS, "--nice", "5"], env=env, capture_output=True, text=True, timeout=60
    )

    assert ran.returncode == 1, ran.stderr
    assert "\ncustomer-metrics: SECRETS_KEY: key 1 of 1 is not a Fernet key" in ran.stderr
    assert "Traceback" not in ran.stderr
