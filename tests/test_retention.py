"""Bounded storage: what `prune` deletes, what it keeps, and what it must never break."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text, update

from service.cli import cli
from service.config import ConfigError, Settings
from service.db import Database
from service.ingestion.purchase_history import refresh_stale
from service.models import DataChange, Order, StoredReport, WebhookDelivery
from service.retention import prune
from tests.conftest import TEST_SECRETS_KEY
from tests.factories import order
from tests.webhook_payloads import SHOP, SHOPIFY_SECRET, shopify_order
from tests.webhook_support import accepted, add_sender, deliver_shopify

LONG_AGO = datetime.now(UTC) - timedelta(days=31)  # past the default 30 days


def deliveries_by_status(db: Database) -> dict[str, int]:
    with db.sessions() as session:
        rows = session.execute(
            select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
        )
        return dict(rows.all())  # type: ignore[arg-type]


def age_deliveries(db: Database, *delivery_ids: int) -> None:
    with db.transaction() as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.pk.in_(delivery_ids))
            .values(received_at=LONG_AGO, processed_at=LONG_AGO)
        )


def deliver(client: FlaskClient, order_id: int, webhook_id: str) -> int:
    response = deliver_shopify(
        client, "orders/create", shopify_order(order_id), webhook_id=webhook_id
    )
    return int(accepted(response)["delivery_id"])


def post_order(api: Any, order_id: str, placed_at: str, customer_id: str = "c-1") -> None:
    record = order(order_id, placed_at=placed_at, customer_id=customer_id)
    assert api.post("/v1/orders", [record]).status_code == 200


def test_settled_deliveries_past_retention_go_recent_failed_and_unmapped_stay(
    client: FlaskClient, db: Database, settings: Settings
) -> None:
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    old, failed, unmapped, recent = (deliver(client, n, f"wh-{n}") for n in (1, 2, 3, 4))
    age_deliveries(db, old, failed, unmapped)
    with db.transaction() as session:
        session.execute(
            update(WebhookDelivery).where(WebhookDelivery.pk == failed).values(status="failed")
        )
        session.execute(
            update(WebhookDelivery).where(WebhookDelivery.pk == unmapped).values(status="received")
        )

    result = prune(db, settings, datetime.now(UTC))

    assert result.deliveries == 1
    with db.sessions() as session:
        kept = set(session.scalars(select(WebhookDelivery.pk)))
    assert kept == {failed, unmapped, recent}


def test_a_retry_after_its_delivery_was_pruned_does_not_count_the_order_twice(
    client: FlaskClient, db: Database, settings: Settings
) -> None:
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    age_deliveries(db, deliver(client, 1, "wh-resent"))
    assert prune(db, settings, datetime.now(UTC)).deliveries == 1

    # The same delivery again (a resend by hand): stored anew, mapped to the same order.
    again = deliver_shopify(client, "orders/create", shopify_order(1), webhook_id="wh-resent")
    assert again.json["status"] == "received"
    assert again.mapped["status"] in ("processed", "ignored")  # type: ignore[attr-defined]
    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 1


def test_pruning_the_change_log_never_leaves_a_cached_report_stale(
    api: Any, db: Database, settings: Settings
) -> None:
    query = {"start": "2024-03-01", "end": "2024-07-31", "interval": "month"}

    def orders_per_month() -> list[int]:
        response = api.get("/v1/metrics", **query)
        assert response.status_code == 200, response.get_data(as_text=True)
        return [p["orders"] for p in response.json["periods"]]

    # One customer each, so that each change's span is its own order's time.
    post_order(api, "o-1", "2024-03-05T10:00:00Z", "c-1")
    assert orders_per_month() == [1, 0, 0, 0, 0]  # cached at this version
    # A change the cached report has not seen (May; its history refreshed by another
    # read), then the whole log ages past retention...
    post_order(api, "o-2", "2024-05-05T10:00:00Z", "c-2")
    refresh_stale(db)
    with db.transaction() as session:
        session.execute(update(DataChange).values(recorded_at=LONG_AGO))
    # ...and a recent change elsewhere in time (July).
    post_order(api, "o-3", "2024-07-05T10:00:00Z", "c-3")
    refresh_stale(db)

    result = prune(db, settings, datetime.now(UTC))

    assert result.changes >= 1
    with db.sessions() as session:
        left = session.scalar(select(func.count()).select_from(DataChange))
    # May is counted: the pruned change is not forgotten by the report cached before it.
    assert orders_per_month() == [1, 0, 1, 0, 1]
    assert left == 2  # the floor, widened to all time, and July's


def test_stored_reports_older_than_the_pruned_log_go(
    api: Any, db: Database, settings: Settings
) -> None:
    post_order(api, "o-1", "2024-03-05T10:00:00Z")
    assert api.get("/v1/metrics", start="2024-03-01", end="2024-03-31").status_code == 200
    post_order(api, "o-2", "2024-03-06T10:00:00Z")
    with db.transaction() as session:
        session.execute(update(DataChange).values(recorded_at=LONG_AGO))

    assert prune(db, settings, datetime.now(UTC)).reports == 1
    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(StoredReport)) == 0


def test_a_dry_run_counts_and_deletes_nothing(
    app: Flask, client: FlaskClient, db: Database
) -> None:
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    age_deliveries(db, deliver(client, 1, "wh-1"))

    result = app.test_cli_runner().invoke(cli, ["prune", "--dry-run"])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("would delete: 1 webhook deliveries, ")
    assert deliveries_by_status(db) == {"processed": 1}
    done = app.test_cli_runner().invoke(cli, ["prune"])
    assert done.output.startswith("deleted: 1 webhook deliveries, "), done.output
    assert deliveries_by_status(db) == {}


def test_retention_zero_keeps_everything(
    client: FlaskClient, db: Database, settings: Settings
) -> None:
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    age_deliveries(db, deliver(client, 1, "wh-1"))

    assert (
        prune(db, dataclasses.replace(settings, retention_days=0), datetime.now(UTC)).cutoff is None
    )
    assert deliveries_by_status(db) == {"processed": 1}


@pytest.mark.parametrize("days", ["1", "6", "-3"])
def test_a_retention_shorter_than_senders_retry_is_refused(days: str) -> None:
    with pytest.raises(ConfigError, match="RETENTION_DAYS must be 0"):
        Settings.from_env({"RETENTION_DAYS": days})


def test_retention_defaults_to_30_days() -> None:
    assert Settings.from_env({}).retention_days == 30


def test_the_mapper_process_prunes_as_it_follows(
    client: FlaskClient, db: Database, database_url: str
) -> None:
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    age_deliveries(db, deliver(client, 1, "wh-1"))
    env = {**os.environ, "DATABASE_URL": database_url, "SECRETS_KEY": TEST_SECRETS_KEY}
    mapper = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from service.cli import main; main()",
            "webhooks",
            "map",
            "--follow",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while deliveries_by_status(db):
            assert mapper.poll() is None, "the mapper exited"
            assert time.monotonic() < deadline, "the mapper did not prune"
            time.sleep(0.1)
    finally:
        mapper.terminate()
        mapper.wait(timeout=10)
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM webhook_deliveries")).scalar() == 0


def test_a_time_budget_stops_pruning_between_batches_and_the_next_call_goes_on(
    client: FlaskClient, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    age_deliveries(db, *(deliver(client, n, f"wh-{n}") for n in (1, 2, 3)))
    monkeypatch.setattr("service.retention.BATCH", 2)

    first = prune(db, settings, datetime.now(UTC), budget_seconds=0)
    second = prune(db, settings, datetime.now(UTC), budget_seconds=0)

    assert (first.deliveries, first.complete) == (2, False)
    assert (second.deliveries, second.complete) == (1, True)
    assert deliveries_by_status(db) == {}
