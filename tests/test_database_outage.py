"""While PostgreSQL is down, starting or full, every request is a 503 to retry, never a 500.

On a cluster of the tests' own (tests/temp_postgres.py), stopped and started at
will; PostgreSQL only, since SQLite cannot be down.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.app import create_app
from service.auth import create_key
from service.config import Settings
from service.db import CONNECT_TIMEOUT_SECONDS, Database
from service.migrate import upgrade
from tests.conftest import TEST_SECRETS_KEY
from tests.factories import customer, order
from tests.temp_postgres import TempCluster, temp_cluster
from tests.webhook_payloads import SHOP, SHOPIFY_SECRET, shopify_order
from tests.webhook_support import add_sender, deliver_shopify

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def cluster() -> Iterator[TempCluster]:
    with temp_cluster() as made:
        yield made


@pytest.fixture(scope="module")
def outage_url(cluster: TempCluster) -> str:
    url = cluster.create_database("outage")
    database = Database(url)
    upgrade(database.engine)
    database.engine.dispose()
    return url


@pytest.fixture
def outage_app(cluster: TempCluster, outage_url: str) -> Iterator[Flask]:
    app = create_app(
        Settings(
            database_url=outage_url,
            reporting_currency="USD",
            webhook_mapper="off",
            secrets_key=TEST_SECRETS_KEY,
        )
    )
    yield app
    cluster.start_if_stopped()
    app.extensions["customer_metrics.db"].engine.dispose()


@pytest.fixture
def headers(outage_app: Flask) -> dict[str, str]:
    database = outage_app.extensions["customer_metrics.db"]
    with database.transaction() as session:
        _, key = create_key(session, "outage", ["ingest", "read"], datetime.now(UTC))
    add_sender(database, "shopify", f"{id(outage_app)}.{SHOP}", SHOPIFY_SECRET)
    return {"Authorization": f"Bearer {key}"}


def _requests(client: FlaskClient, headers: dict[str, str], shop: str, n: int) -> dict[str, Any]:
    """One of each kind of request the service answers from the database."""
    return {
        "POST orders": client.post(
            "/v1/orders", json={"items": [order(f"o-{n}")]}, headers=headers
        ),
        "POST customers": client.post(
            "/v1/customers", json={"items": [customer(f"c-{n}")]}, headers=headers
        ),
        "POST webhook": deliver_shopify(
            client, "orders/create", shopify_order(5000 + n, guest=True), shop=shop
        ),
        "GET order": client.get(f"/v1/orders/api/o-{n}", headers=headers),
        "GET orders": client.get("/v1/orders", headers=headers),
        "GET customers": client.get("/v1/customers?source=api", headers=headers),
        "GET metrics": client.get("/v1/metrics?start=2024-01-01&end=2024-03-31", headers=headers),
        "DELETE customer": client.delete(f"/v1/customers/api/c-{n}", headers=headers),
        "GET readyz": client.get("/readyz"),
    }


def _problems(answers: dict[str, Any]) -> dict[str, tuple[int, str | None, str | None]]:
    return {
        name: (response.status_code, response.mimetype, response.headers.get("Retry-After"))
        for name, response in answers.items()
    }


def test_every_request_while_the_database_is_down_is_a_503_and_it_recovers_by_itself(
    cluster, outage_app, headers, caplog
):
    """The first request on each pooled connection meets it broken; every later one
    fails to connect at all. Both are 503 with Retry-After, logged as one line."""
    client = outage_app.test_client()
    shop = f"{id(outage_app)}.{SHOP}"
    before = _requests(client, headers, shop, 1)  # the pool now holds live connections
    assert {name: r.status_code for name, r in before.items()}["POST orders"] == 200

    cluster.stop()
    caplog.clear()
    rounds = [_problems(_requests(client, headers, shop, 2 + n)) for n in range(3)]

    expected = (503, PROBLEM, "1")
    for answers in rounds:
        assert answers == dict.fromkeys(answers, expected) | {"GET readyz": (503, PROBLEM, None)}
    logged = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r for r in logged if r.exc_info or r.levelno >= logging.ERROR] == []
    assert any("database is unavailable" in r.getMessage() for r in logged)

    cluster.start()
    after = {name: r.status_code for name, r in _requests(client, headers, shop, 9).items()}
    assert after == {
        "POST orders": 200,
        "POST customers": 200,
        "POST webhook": 200,
        "GET order": 200,
        "GET orders": 200,
        "GET customers": 200,
        "GET metrics": 200,
        "DELETE customer": 204,
        "GET readyz": 200,
    }


def test_a_server_with_no_connection_left_is_a_503(cluster, outage_app, headers):
    """ "too many clients already": every slot is taken by connections the test holds."""
    outage_app.extensions["customer_metrics.db"].engine.dispose()  # no pooled connection
    held: list[psycopg.Connection[Any]] = []
    try:
        with pytest.raises(psycopg.OperationalError, match="too many clients"):
            for _ in range(100):
                held.append(psycopg.connect(f"host=127.0.0.1 port={cluster.port} user=postgres"))
        response = outage_app.test_client().get("/v1/orders", headers=headers)
    finally:
        for connection in held:
            connection.close()
    assert (response.status_code, response.mimetype) == (503, PROBLEM)
    assert response.headers["Retry-After"] == "1"
    assert "database" in response.json["detail"]


def test_a_command_while_the_database_is_down_says_so_in_one_line(cluster, outage_url):
    cluster.stop()
    done = subprocess.run(
        [sys.executable, "-c", "from service.cli import main; main()", "keys", "list"],
        env={"DATABASE_URL": outage_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    cluster.start()
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    assert "database is unavailable" in done.stderr, done.stderr


def test_a_server_that_never_answers_a_new_connection_is_a_503_within_the_connect_timeout(
    cluster, outage_app, headers
):
    """The postmaster is stopped (SIGSTOP): the kernel still accepts the connection,
    nobody answers it. Without a connect timeout the request would wait forever."""
    outage_app.extensions["customer_metrics.db"].engine.dispose()  # no pooled connection
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    os.kill(postmaster, signal.SIGSTOP)
    try:
        answer: list[Any] = []
        asking = threading.Thread(
            target=lambda: answer.append(
                outage_app.test_client().get("/v1/orders", headers=headers)
            ),
            daemon=True,
        )
        started = time.monotonic()
        asking.start()
        asking.join(CONNECT_TIMEOUT_SECONDS + 10)
        waited = time.monotonic() - started
    finally:
        os.kill(postmaster, signal.SIGCONT)
    assert answer, f"no answer after {waited:.0f} s"
    assert (answer[0].status_code, answer[0].mimetype) == (503, PROBLEM)
    assert waited < CONNECT_TIMEOUT_SECONDS + 5
