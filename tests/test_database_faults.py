"""Faults under load, with the real server: PostgreSQL crashing and coming back, a worker
killed. Nothing acknowledged is lost, every failure is a 503 to retry, and the service
recovers by itself.

`customer-metrics serve` (gunicorn, 2 workers x 4 threads, the mapper as a thread of
each worker) runs against a cluster of the test's own (tests/temp_postgres.py); a
few threads post REST batches and signed Shopify deliveries (tests/fault_load.py).
PostgreSQL only. Each test takes about 15 s.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from service.db import Database
from service.migrate import upgrade
from tests.fault_load import Load, Tally
from tests.temp_postgres import TempCluster, temp_cluster
from tests.webhook_payloads import SHOP, SHOPIFY_SECRET
from tests.webhook_support import add_sender

SERVE = [sys.executable, "-c", "from service.cli import main; main()", "serve"]
KEY = "cm_fault-tests-key-0123456789abcdef"
SERVER_PORTS = range(18350, 18400)  # task 3's ports; the cluster takes from 18310 up


@dataclass
class Served:
    base: str
    process: subprocess.Popen[str]
    dsn: str  # the database, for psycopg
    log: Path  # gunicorn's and the app's stderr


@pytest.fixture(scope="module")
def cluster() -> Iterator[TempCluster]:
    with temp_cluster() as made:
        yield made


@pytest.fixture
def served(
    cluster: TempCluster, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Served]:
    """The service on a fresh database of the cluster; stopped (SIGTERM) afterwards."""
    name = request.node.name.removeprefix("test_")[:40]
    url = cluster.create_database(name)
    database = Database(url)
    upgrade(database.engine)
    add_sender(database, "shopify", SHOP, SHOPIFY_SECRET)
    database.engine.dispose()
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "BOOTSTRAP_API_KEY": KEY,
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "WEB_THREADS": "4",
        "WEBHOOK_MAPPER": "thread",
    }
    log = tmp_path / "serve.log"  # a file: a pipe nobody reads would fill and block gunicorn
    with log.open("w") as stderr:
        process = subprocess.Popen(
            SERVE, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(base, process)
        yield Served(
            base, process, f"host=127.0.0.1 port={cluster.port} dbname={name} user=postgres", log
        )
    finally:
        cluster.start_if_stopped()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if os.environ.get("FAULT_LOG_DIR"):
            shutil.copy(log, Path(os.environ["FAULT_LOG_DIR"], f"{name}.log"))


def _free_port() -> int:
    for port in SERVER_PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port in {SERVER_PORTS}")


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _wait_until_ready(base: str, process: subprocess.Popen[str], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not _ready(base):
        assert process.poll() is None, "serve exited"
        assert time.monotonic() < deadline, f"not ready within {seconds} s"
        time.sleep(0.2)


def _stored_order_ids(dsn: str, ids: list[str]) -> int:
    with psycopg.connect(dsn) as connection:
        row = connection.execute(
            "SELECT count(*) FROM orders WHERE source = 'api' AND external_id = ANY(%s)", [ids]
        ).fetchone()
    return int(row[0]) if row else 0


def _stored_delivery_ids(dsn: str, webhook_ids: list[str]) -> int:
    with psycopg.connect(dsn) as connection:
        row = connection.execute(
            "SELECT count(DISTINCT headers ->> 'x-shopify-webhook-id') FROM webhook_deliveries"
            " WHERE headers ->> 'x-shopify-webhook-id' = ANY(%s)",
            [webhook_ids],
        ).fetchone()
    return int(row[0]) if row else 0


def _delivery_statuses(dsn: str, seconds: float = 15) -> dict[str, int]:
    """Deliveries by status, once none waits to be mapped (or `seconds` passed)."""
    deadline = time.monotonic() + seconds
    while True:
        with psycopg.connect(dsn) as connection:
            rows = connection.execute(
                "SELECT status, count(*) FROM webhook_deliveries GROUP BY status"
            ).fetchall()
        statuses = {status: int(count) for status, count in rows}
        if "received" not in statuses or time.monotonic() > deadline:
            return statuses
        time.sleep(0.5)


def _workers(master: int) -> set[int]:
    """gunicorn's worker processes: the children of its master that run gunicorn (not a
    mapper process it may start too)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (entry / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue
            if parent == master and b"gunicorn" in command and b"webhooks" not in command:
                found.add(int(entry.name))
    return found


def _assert_nothing_acknowledged_was_lost(served: Served, tally: Tally) -> None:
    orders, deliveries = tally.acknowledged_orders, tally.acknowledged_deliveries
    assert orders and deliveries, tally.statuses
    assert _stored_order_ids(served.dsn, orders) == len(orders)
    assert _stored_delivery_ids(served.dsn, deliveries) == len(deliveries)


def _report(what: str, tally: Tally, **figures: object) -> None:
    extra = " ".join(f"{name}={value}" for name, value in figures.items())
    print(
        f"\n{what}: {extra} acknowledged batches={len(tally.acknowledged_orders) // 10}"
        f" (orders {len(tally.acknowledged_orders)}),"
        f" deliveries={len(tally.acknowledged_deliveries)}, statuses={dict(tally.statuses)}"
    )


def test_postgresql_crashing_twice_under_load_loses_nothing_acknowledged_and_answers_503(
    cluster, served
):
    restarts = 2
    with Load(served.base, KEY, SHOP) as load:
        time.sleep(2)
        for _ in range(restarts):
            cluster.restart("immediate")  # a crash: no checkpoint, recovery at start
            time.sleep(2.5)
        recovered = time.monotonic()
        time.sleep(1.5)
    tally = load.tally
    _report("database restarts", tally, restarts=restarts)

    assert tally.unusable == [], tally.unusable[:5]
    assert tally.dropped == [], tally.dropped[:5]
    assert tally.statuses["503"] > 0, "no request met the outage"
    # Recovered without a restart of the service: answering again before the load ended.
    assert tally.acknowledged_since(recovered) > 0
    assert _ready(served.base)
    _assert_nothing_acknowledged_was_lost(served, tally)
    # The mapper threads carried on after the restarts: every delivery was mapped.
    statuses = _delivery_statuses(served.dsn)
    print("deliveries by status:", statuses)
    assert set(statuses) == {"processed"}, statuses
    # One line per failure, never a traceback, for what the database did.
    assert "Traceback" not in served.log.read_text()


def test_a_worker_killed_under_load_is_replaced_and_nothing_acknowledged_is_lost(served):
    before = _workers(served.process.pid)
    assert len(before) == 2, before
    with Load(served.base, KEY, SHOP) as load:
        time.sleep(2)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        deadline = killed + 20
        while len(after := _workers(served.process.pid) - {victim}) < 2:
            assert time.monotonic() < deadline, "the killed worker was not replaced"
            time.sleep(0.1)
        time.sleep(2)
    tally = load.tally
    _report("worker kill -9", tally, replaced=sorted(after - before))

    assert tally.unusable == [], tally.unusable[:5]
    # Only requests the killed worker was handling can go unanswered: a few at most.
    assert len(tally.dropped) <= 4, tally.dropped
    assert tally.acknowledged_since(killed + 1) > 0
    assert _ready(served.base)
    _assert_nothing_acknowledged_was_lost(served, tally)
