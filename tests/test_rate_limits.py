"""Per-key rate limits: N requests a minute as a burst of N, then one every minute/N.

The counting (`take`) runs against the real database at instants the tests choose; the
HTTP tests send real requests, whose instants are the clock's.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text

from service.app import create_app
from service.auth import create_key
from service.cli import cli
from service.config import ConfigError, Settings
from service.db import Database
from service.models import ApiKey, ApiKeyRate
from service.rate_limits import MAX_RATE_LIMIT, take
from tests.factories import order

T0 = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)


def new_key(db: Database, rate_limit: int | None, name: str = "k") -> tuple[int, dict[str, str]]:
    """A key that may ingest and read, with this limit: its pk and its Authorization header."""
    with db.transaction() as session:
        record, key = create_key(
            session, name, ["ingest", "read"], datetime.now(UTC), rate_limit=rate_limit
        )
    return record.pk, {"Authorization": f"Bearer {key}"}


def allowed_in_a_row(db: Database, key_pk: int, limit: int, now: datetime, tries: int) -> int:
    """How many of `tries` requests at `now` are allowed."""
    allowed = 0
    for _ in range(tries):
        with db.autocommitting() as connection:
            allowed += take(connection, key_pk, limit, now).allowed
    return allowed


def decision_at(db: Database, key_pk: int, limit: int, now: datetime) -> tuple[bool, int]:
    with db.autocommitting() as connection:
        decision = take(connection, key_pk, limit, now)
    return decision.allowed, decision.retry_after


# --- counting, at chosen instants ----------------------------------------------------------


def test_a_key_is_refused_exactly_at_its_limit_plus_one(db: Database) -> None:
    key_pk, _ = new_key(db, 5)

    assert allowed_in_a_row(db, key_pk, 5, T0, 5) == 5
    # 5 a minute is one every 12 s: the next slot is 12 s away.
    assert decision_at(db, key_pk, 5, T0) == (False, 12)
    assert decision_at(db, key_pk, 5, T0 + timedelta(seconds=4.5)) == (False, 8)


def test_one_slot_comes_back_every_minute_over_the_limit(db: Database) -> None:
    key_pk, _ = new_key(db, 5)
    allowed_in_a_row(db, key_pk, 5, T0, 5)

    assert decision_at(db, key_pk, 5, T0 + timedelta(seconds=11.9)) == (False, 1)
    assert allowed_in_a_row(db, key_pk, 5, T0 + timedelta(seconds=12), 3) == 1
    assert allowed_in_a_row(db, key_pk, 5, T0 + timedelta(seconds=36), 3) == 2


def test_a_minute_after_the_burst_the_whole_burst_is_free_again(db: Database) -> None:
    key_pk, _ = new_key(db, 5)
    assert allowed_in_a_row(db, key_pk, 5, T0, 8) == 5

    assert allowed_in_a_row(db, key_pk, 5, T0 + timedelta(minutes=1), 8) == 5
    # A long idle time saves nothing up beyond one burst.
    assert allowed_in_a_row(db, key_pk, 5, T0 + timedelta(hours=5), 8) == 5


def test_refused_requests_do_not_use_up_the_limit(db: Database) -> None:
    key_pk, _ = new_key(db, 2)
    assert allowed_in_a_row(db, key_pk, 2, T0, 50) == 2

    assert allowed_in_a_row(db, key_pk, 2, T0 + timedelta(seconds=30), 2) == 1


def test_a_clock_stepping_back_costs_a_key_one_slot_not_the_step(db: Database) -> None:
    key_pk, _ = new_key(db, 600)  # one slot every 0.1 s
    assert allowed_in_a_row(db, key_pk, 600, T0, 1) == 1

    earlier = T0 - timedelta(hours=1)  # the clock stepped back an hour (found by review)
    assert decision_at(db, key_pk, 600, earlier) == (False, 1)
    assert allowed_in_a_row(db, key_pk, 600, earlier + timedelta(seconds=0.1), 1) == 1


def test_each_key_has_its_own_limit(db: Database) -> None:
    busy, _ = new_key(db, 3, "busy")
    quiet, _ = new_key(db, 3, "quiet")
    assert allowed_in_a_row(db, busy, 3, T0, 10) == 3

    assert allowed_in_a_row(db, quiet, 3, T0, 10) == 3


def test_the_largest_limit_allows_exactly_its_burst(db: Database) -> None:
    key_pk, _ = new_key(db, MAX_RATE_LIMIT)
    spacing = 60 * 10**9 // MAX_RATE_LIMIT
    now_ns = (T0 - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
    with db.transaction() as session:  # as if MAX_RATE_LIMIT - 1 requests had just run at T0
        session.add(
            ApiKeyRate(
                key_pk=key_pk, free_at_ns=now_ns + (MAX_RATE_LIMIT - 1) * spacing, allowed=True
            )
        )

    assert allowed_in_a_row(db, key_pk, MAX_RATE_LIMIT, T0, 2) == 1


@pytest.mark.parametrize("limit", [1, 7, 20])
def test_concurrent_requests_of_a_key_never_exceed_its_limit(
    db: Database, backend: str, limit: int
) -> None:
    key_pk, _ = new_key(db, limit)

    def one(_: int) -> bool:
        with db.autocommitting() as connection:
            return take(connection, key_pk, limit, T0).allowed

    with ThreadPoolExecutor(8) as pool:
        decisions = list(pool.map(one, range(limit * 3 + 8)))

    assert sum(decisions) == limit


def test_counting_waits_for_no_wal_flush_on_postgresql(db: Database, backend: str) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite has no unlogged tables")
    with db.sessions() as session:
        persistence = session.scalar(
            text("SELECT relpersistence FROM pg_class WHERE relname = 'api_key_rates'")
        )
    assert persistence == "u"  # unlogged


# --- over HTTP -----------------------------------------------------------------------------


def test_the_request_past_the_limit_gets_a_429_problem_with_retry_after(
    client: FlaskClient, db: Database
) -> None:
    _, headers = new_key(db, 2)
    statuses = [client.get("/v1/orders", headers=headers).status_code for _ in range(2)]
    refused = client.get("/v1/orders", headers=headers)

    assert statuses == [200, 200]
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    assert refused.json["type"] == "urn:customer-metrics:problem:rate-limited"
    assert "2 requests a minute" in refused.json["detail"]
    # 2 a minute is one every 30 s, counted from the first request a moment ago.
    assert 28 <= int(refused.headers["Retry-After"]) <= 30


def test_a_refused_batch_stores_nothing(client: FlaskClient, db: Database) -> None:
    _, headers = new_key(db, 1)
    assert (
        client.post("/v1/orders", json={"items": [order("o-1")]}, headers=headers).status_code
        == 200
    )

    refused = client.post("/v1/orders", json={"items": [order("o-2")]}, headers=headers)

    assert refused.status_code == 429
    assert client.get("/v1/orders/api/o-2", headers=headers).status_code == 429
    unlimited = new_key(db, None, "reader")[1]
    assert client.get("/v1/orders/api/o-2", headers=unlimited).status_code == 404


def test_keys_without_a_limit_are_unaffected_and_cost_no_row(
    client: FlaskClient, db: Database
) -> None:
    limited_pk, limited = new_key(db, 1, "limited")
    _, free = new_key(db, None, "free")
    assert client.get("/v1/orders", headers=limited).status_code == 200
    assert client.get("/v1/orders", headers=limited).status_code == 429

    assert {client.get("/v1/orders", headers=free).status_code for _ in range(30)} == {200}
    with db.sessions() as session:
        assert list(session.scalars(select(ApiKeyRate.key_pk))) == [limited_pk]


def test_unauthenticated_and_forbidden_requests_are_answered_before_any_count(
    client: FlaskClient, db: Database
) -> None:
    with db.transaction() as session:
        _, key = create_key(session, "reader", ["read"], datetime.now(UTC), rate_limit=1)
    forbidden = client.post(
        "/v1/orders", json={"items": [order()]}, headers={"Authorization": f"Bearer {key}"}
    )

    assert forbidden.status_code == 403
    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ApiKeyRate)) == 0


def test_the_default_limits_keys_without_their_own_and_spares_unlimited_ones(
    app: Flask, db: Database, settings: Settings
) -> None:
    defaulted = create_app(dataclasses.replace(settings, default_rate_limit=2))
    client = defaulted.test_client()
    _, plain = new_key(db, None, "plain")
    _, exempt = new_key(db, 0, "exempt")
    _, own = new_key(db, 3, "own")
    try:
        assert [client.get("/v1/orders", headers=plain).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        assert {client.get("/v1/orders", headers=exempt).status_code for _ in range(10)} == {200}
        assert [client.get("/v1/orders", headers=own).status_code for _ in range(4)] == [
            200,
            200,
            200,
            429,
        ]
    finally:
        defaulted.extensions["customer_metrics.db"].engine.dispose()


def test_concurrent_http_requests_never_exceed_the_limit(
    app: Flask, db: Database, backend: str
) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite runs one writer at a time: the counting race is PostgreSQL's")
    limit = 20  # one slot every 3 s once the burst is used
    _, headers = new_key(db, limit)

    def get(_: int) -> int:
        return app.test_client().get("/v1/orders", headers=headers).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(get, range(80)))
    elapsed = time.monotonic() - started

    assert set(statuses) == {200, 429}
    # The burst, plus at most one slot per 3 s the requests took.
    assert limit <= statuses.count(200) <= limit + int(elapsed / 3)


# --- setting a limit ---------------------------------------------------------------------


def run(app: Flask, *args: str) -> object:
    return app.test_cli_runner().invoke(cli, list(args))


def limits(db: Database) -> list[int | None]:
    with db.sessions() as session:
        return list(session.scalars(select(ApiKey.rate_limit).order_by(ApiKey.pk)))


def test_keys_create_and_keys_rate_limit_set_a_keys_limit(app: Flask, db: Database) -> None:
    for args in (
        ("keys", "create", "--name", "a", "--rate-limit", "120"),
        ("keys", "create", "--name", "b"),
        ("keys", "create", "--name", "c", "--rate-limit", "unlimited"),
    ):
        result = run(app, *args)
        assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert limits(db) == [120, None, 0]

    for key_id, value in (("1", "default"), ("2", "30"), ("3", "5")):
        result = run(app, "keys", "rate-limit", key_id, value)
        assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert limits(db) == [None, 30, 5]

    listed = run(app, "keys", "list").output  # type: ignore[attr-defined]
    assert "default (unlimited)" in listed and "30/minute" in listed and "5/minute" in listed


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "lots", str(MAX_RATE_LIMIT + 1), "\u0665"])
def test_a_rate_limit_that_is_not_a_count_a_minute_is_refused(
    app: Flask, db: Database, value: str
) -> None:
    created = run(app, "keys", "create", "--name", "a", "--rate-limit", value)
    run(app, "keys", "create", "--name", "b")
    changed = run(app, "keys", "rate-limit", "1", value)

    assert created.exit_code == 2 and "requests a minute" in created.output  # type: ignore[attr-defined]
    assert changed.exit_code == 2  # type: ignore[attr-defined]
    assert limits(db) == [None]


def test_keys_rate_limit_of_an_unknown_key_fails_with_a_message(app: Flask) -> None:
    result = run(app, "keys", "rate-limit", "99", "10")
    assert result.exit_code == 1  # type: ignore[attr-defined]
    assert "no active key '99'" in result.output  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", None), ("0", None), ("600", 600), (str(MAX_RATE_LIMIT), MAX_RATE_LIMIT)],
)
def test_default_rate_limit_is_read_from_the_environment(raw: str, expected: int | None) -> None:
    assert Settings.from_env({"DEFAULT_RATE_LIMIT": raw}).default_rate_limit == expected


@pytest.mark.parametrize("raw", ["-1", "ten", str(MAX_RATE_LIMIT + 1)])
def test_a_malformed_default_rate_limit_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="DEFAULT_RATE_LIMIT"):
        Settings.from_env({"DEFAULT_RATE_LIMIT": raw})


def test_one_limit_holds_across_gunicorn_worker_processes(
    app: Flask, db: Database, database_url: str, tmp_path: Path
) -> None:
    limit = 30  # one slot every 2 s once the burst is used
    _, headers = new_key(db, limit)
    port = 18100 + os.getpid() % 100  # this task's ports
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "3",
        "WEBHOOK_MAPPER": "off",
    }
    serve = [sys.executable, "-c", "from service.cli import main; main()", "serve"]
    process = subprocess.Popen(serve, cwd=tmp_path, env=env, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(base, process)

        def get(_: int) -> int:
            request = urllib.request.Request(f"{base}/v1/orders?limit=1", headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return int(response.status)
            except urllib.error.HTTPError as error:
                return int(error.code)

        started = time.monotonic()
        with ThreadPoolExecutor(12) as pool:
            statuses = list(pool.map(get, range(120)))
        elapsed = time.monotonic() - started
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)

    assert set(statuses) == {200, 429}
    assert limit <= statuses.count(200) <= limit + int(elapsed / 2)


def wait_until_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "serve exited early"
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the service did not become ready within 30 s")
