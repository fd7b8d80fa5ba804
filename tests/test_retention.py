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
from service.metrics.purchase_history import refresh_stale
from service.models import DataChange, Order, StoredReport, WebhookDelivery
from service.retention import prune
from tests.conftest import TEST_SECRETS_KEY
from tests.factories import order
from tests.webhook_payloads import (
    SHOP,
    SHOPIFY_SECRET,
    STANDARD_SECRET,
    shopify_order,
    standard_envelope,
)
from tests.webhook_support import accepted, add_sender, deliver_shopify, deliver_standard

LONG_AGO = datetime.now(UTC) - timedelta(days=31)  # past the default 30 days


def deliveries_by_status(db: Database) -> dict[str, int]:
    with db.sessions() as session:
        rows = session.execute(
            select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
        )
        return dict(rows.all())  # type: ignore[arg-type]


def age_deliveries(db: Database, *delivery_ids: int, days: int = 31) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=days)
    with db.transaction() as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.pk.in_(delivery_ids))
            .values(received_at=long_ago, processed_at=long_ago)
        )


def stored_order(db: Database, order_id: str) -> tuple[int, str]:
    with db.sessions() as session:
        row = session.execute(
            select(Order.total_minor, Order.status).where(Order.external_id == order_id)
        ).one()
    return int(row[0]), str(row[1])


def deliver(client: FlaskClient, order_id: int, webhook_id: str) -> int:
    response = deliver_shopify(
        client, "orders/create", shopify_order(order_id), webhook_id=webhook_id
    )
    return int(accepted(response)["delivery_id"])


def post_order(api: Any, order_id: str, placed_at: str, customer_id: str = "c-1") -> None:
    record = order(order_id, placed_at=placed_at, customer_id=customer_id)
    assert api.post("/v1/orders", [record]).status_code == 200


def test_settled_deliveries_past_retention_lose_their_bytes_recent_failed_and_unmapped_stay(
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

    assert (result.bodies, result.tombstones) == (1, 0)
    with db.sessions() as session:
        rows = {d.pk: d for d in session.scalars(select(WebhookDelivery))}
        assert set(rows) == {old, failed, unmapped, recent}
        tombstone = rows[old]
        assert (tombstone.status, tombstone.body, tombstone.headers) == ("pruned", b"", {})
        assert (tombstone.delivery_key, tombstone.topic) == ("wh-1", "orders/create")
        assert all(rows[pk].body and rows[pk].headers for pk in (failed, unmapped, recent))


def test_a_resend_after_its_body_was_pruned_is_a_duplicate_and_does_not_revert_the_order(
    client: FlaskClient, db: Database, settings: Settings
) -> None:
    # The reviewer's case: versions without updated_at, so the later delivery wins.
    add_sender(db, "standard", "crm", STANDARD_SECRET)
    v1 = standard_envelope("order", order("o-1", source="crm", total="20.00", status="pending"))
    v2 = standard_envelope("order", order("o-1", source="crm", total="75.00", status="completed"))
    first = accepted(deliver_standard(client, v1, message_id="msg_1"))["delivery_id"]
    second = accepted(deliver_standard(client, v2, message_id="msg_2"))["delivery_id"]
    assert stored_order(db, "o-1") == (7500, "completed")
    age_deliveries(db, first, second, days=40)
    prune(db, settings, datetime.now(UTC))

    again = deliver_standard(client, v1, message_id="msg_1")  # a "resend" from the sender

    assert again.status_code == 200
    assert again.json == {"delivery_id": first, "status": "duplicate"}
    assert stored_order(db, "o-1") == (7500, "completed")
    assert deliveries_by_status(db) == {"pruned": 2}  # their bodies did go


def test_tombstones_past_dedup_retention_go_and_a_resend_after_that_is_new(
    client: FlaskClient, db: Database, settings: Settings
) -> None:
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    old, recent = deliver(client, 1, "wh-old"), deliver(client, 2, "wh-recent")
    age_deliveries(db, old, days=366)
    age_deliveries(db, recent, days=40)

    counted = prune(db, settings, datetime.now(UTC), dry_run=True)
    result = prune(db, settings, datetime.now(UTC))

    assert (counted.bodies, counted.tombstones) == (2, 1)

    assert (result.bodies, result.tombstones) == (2, 1)
    assert deliveries_by_status(db) == {"pruned": 1}
    again = deliver_shopify(client, "orders/create", shopify_order(1), webhook_id="wh-old")
    assert again.json["status"] == "received"
    assert again.mapped["status"] == "processed"  # type: ignore[attr-defined]
    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 2


def test_dedup_retention_zero_keeps_tombstones_forever(
    client: FlaskClient, db: Database, settings: Settings
) -> None:
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    age_deliveries(db, deliver(client, 1, "wh-1"), days=3650)

    result = prune(db, dataclasses.replace(settings, dedup_retention_days=0), datetime.now(UTC))

    assert (result.bodies, result.tombstones) == (1, 0)
    assert deliveries_by_status(db) == {"pruned": 1}


def test_replaying_a_pruned_delivery_is_refused_and_it_is_listed_as_pruned(
    app: Flask, client: FlaskClient, db: Database, settings: Settings
) -> None:
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    delivery = deliver(client, 1, "wh-1")
    age_deliveries(db, delivery)
    prune(db, settings, datetime.now(UTC))
    runner = app.test_cli_runner()

    replayed = runner.invoke(cli, ["webhooks", "replay", str(delivery)])
    listed = runner.invoke(cli, ["webhooks", "deliveries", "--status", "pruned"])

    assert replayed.exit_code == 1
    assert f"{delivery}: failed: delivery {delivery} was pruned" in replayed.output
    assert listed.exit_code == 0, listed.output
    assert listed.output.rstrip().endswith("orders/create pruned")
    assert deliveries_by_status(db) == {"pruned": 1}  # the refusal marked nothing


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
    assert result.output.startswith("would delete: 1 webhook delivery bodies (tombstones kept)")
    assert deliveries_by_status(db) == {"processed": 1}
    done = app.test_cli_runner().invoke(cli, ["prune"])
    assert done.output.startswith("deleted: 1 webhook delivery bodies (tombstones kept), 0 ")
    assert deliveries_by_status(db) == {"pruned": 1}


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


def test_retention_defaults_to_30_days_and_tombstones_to_a_year() -> None:
    assert Settings.from_env({}).retention_days == 30
    assert Settings.from_env({}).dedup_retention_days == 365
    assert Settings.from_env({"DEDUP_RETENTION_DAYS": "0"}).dedup_retention_days == 0


def test_tombstones_kept_shorter_than_the_bodies_are_refused() -> None:
    with pytest.raises(ConfigError, match="DEDUP_RETENTION_DAYS must be 0"):
        Settings.from_env({"RETENTION_DAYS": "60", "DEDUP_RETENTION_DAYS": "59"})


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
        while deliveries_by_status(db) != {"pruned": 1}:
            assert mapper.poll() is None, "the mapper exited"
            assert time.monotonic() < deadline, "the mapper did not prune"
            time.sleep(0.1)
    finally:
        mapper.terminate()
        mapper.wait(timeout=10)
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT length(body) FROM webhook_deliveries")).scalar() == 0


def test_a_time_budget_stops_pruning_between_batches_and_the_next_call_goes_on(
    client: FlaskClient, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    age_deliveries(db, *(deliver(client, n, f"wh-{n}") for n in (1, 2, 3)))
    monkeypatch.setattr("service.retention.BATCH", 2)

    first = prune(db, settings, datetime.now(UTC), budget_seconds=0)
    second = prune(db, settings, datetime.now(UTC), budget_seconds=0)

    assert (first.bodies, first.complete) == (2, False)
    assert (second.bodies, second.complete) == (1, True)
    assert deliveries_by_status(db) == {"pruned": 3}
