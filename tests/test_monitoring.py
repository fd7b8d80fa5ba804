"""/readyz shows mapping lag and /metrics the service's metrics, through real HTTP requests."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, update

from service.app import create_app
from service.auth import create_key
from service.db import Database
from service.instruments import REGISTRY
from service.models import StaleHistory, WebhookDelivery
from service.monitoring.exposition import MULTIPROCESS_DIR
from service.monitoring.exposition import scrape as scrape_text
from tests.webhook_payloads import SHOP, SHOPIFY_SECRET, shopify_order
from tests.webhook_support import add_sender, deliver_shopify, map_waiting

REQUEST_COUNT = "customer_metrics_http_request_duration_seconds_count"


@pytest.fixture
def unmapping_client(app: Flask) -> FlaskClient:
    """A client that leaves stored deliveries unmapped, as when no mapper runs."""
    return FlaskClient(app)


@pytest.fixture
def metrics_key(db: Database) -> dict[str, str]:
    with db.transaction() as session:
        _, key = create_key(session, "prometheus", ["metrics"], datetime.now(UTC))
    return {"Authorization": f"Bearer {key}"}


def scrape(client: FlaskClient, key: dict[str, str]) -> dict[tuple[str, tuple[Any, ...]], float]:
    """Every sample of /metrics, by name and sorted labels."""
    response = client.get("/metrics", headers=key)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def sample(samples: dict[tuple[str, tuple[Any, ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _age_deliveries(db: Database, seconds: float) -> None:
    """Make the waiting deliveries look received `seconds` ago (a mapper stopped that long)."""
    with db.transaction() as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.status == "received")
            .values(received_at=datetime.now(UTC) - timedelta(seconds=seconds))
        )


# --- /readyz ---------------------------------------------------------------------------


def test_readyz_reports_no_lag_when_nothing_waits(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "oldest_unmapped_delivery_seconds": 0.0}


def test_readyz_fails_once_a_delivery_waited_past_the_threshold_and_recovers_when_mapped(
    app, db, unmapping_client
):
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    assert deliver_shopify(unmapping_client, "orders/create", shopify_order(1)).status_code == 200
    _age_deliveries(db, 120)
    answer = unmapping_client.get("/readyz")
    assert answer.status_code == 200  # 120 s is within the default 300 s
    assert 119 < answer.get_json()["oldest_unmapped_delivery_seconds"] < 130

    _age_deliveries(db, 400)
    answer = unmapping_client.get("/readyz")
    assert answer.status_code == 503
    assert answer.content_type == "application/problem+json"
    detail = answer.get_json()["detail"]
    assert "oldest has waited 400 s" in detail
    assert "READYZ_MAX_MAPPING_LAG_SECONDS (300 s)" in detail

    map_waiting(app)
    assert unmapping_client.get("/readyz").get_json() == {
        "status": "ready",
        "oldest_unmapped_delivery_seconds": 0.0,
    }


def test_readyz_lag_threshold_is_configurable_and_zero_turns_it_off(settings, db):
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    strict = create_app(dataclasses.replace(settings, readyz_max_mapping_lag_seconds=5))
    lenient = create_app(dataclasses.replace(settings, readyz_max_mapping_lag_seconds=0))
    try:
        deliver_shopify(FlaskClient(strict), "orders/create", shopify_order(2))
        _age_deliveries(db, 10)
        assert FlaskClient(strict).get("/readyz").status_code == 503
        assert FlaskClient(lenient).get("/readyz").status_code == 200
    finally:
        strict.extensions["customer_metrics.db"].engine.dispose()
        lenient.extensions["customer_metrics.db"].engine.dispose()


# --- /metrics --------------------------------------------------------------------------


def test_metrics_need_a_key_with_the_metrics_scope(client, keys, metrics_key):
    assert client.get("/metrics").status_code == 401
    forbidden = client.get("/metrics", headers=keys.both)
    assert forbidden.status_code == 403
    assert "'metrics' scope" in forbidden.get_json()["detail"]
    assert client.get("/metrics", headers=keys.admin).status_code == 200
    assert client.get("/metrics", headers=metrics_key).status_code == 200


def test_requests_are_counted_by_route_method_and_status_never_by_raw_path(
    client, keys, metrics_key
):
    before = scrape(client, metrics_key)
    assert client.get("/v1/orders/api/order-1", headers=keys.read).status_code == 404
    assert client.get("/v1/orders/api/order-2", headers=keys.read).status_code == 404
    assert client.get("/v1/orders", headers=keys.read).status_code == 200
    assert client.get("/no/such/path").status_code == 404
    after = scrape(client, metrics_key)

    def moved(route: str, status: str) -> float:
        labels = {"route": route, "method": "GET", "status": status}
        return sample(after, REQUEST_COUNT, **labels) - sample(before, REQUEST_COUNT, **labels)

    assert moved("/v1/orders/<source>/<path:order_id>", "404") == 2
    assert moved("/v1/orders", "200") == 1
    assert moved("<unmatched>", "404") == 1
    routes = {dict(labels).get("route") for _, labels in after}
    assert not any("order-1" in str(route) or "/no/such" in str(route) for route in routes)
    bucket = ("/v1/orders", "GET", "200")
    assert any(
        name == "customer_metrics_http_request_duration_seconds_bucket"
        and (dict(labels)["route"], dict(labels)["method"], dict(labels)["status"]) == bucket
        for name, labels in after
    )


def test_deliveries_received_mapped_failed_and_the_mapping_lag_move(
    app, db, unmapping_client, metrics_key
):
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    client = unmapping_client
    before = scrape(client, metrics_key)
    assert sample(before, "customer_metrics_webhook_deliveries_unmapped") == 0
    assert sample(before, "customer_metrics_database_up") == 1

    deliver_shopify(client, "orders/create", shopify_order(11), webhook_id="m-1")
    deliver_shopify(client, "orders/create", shopify_order(11), webhook_id="m-1")  # a retry
    deliver_shopify(client, "orders/create", {"id": "not a shopify order"}, webhook_id="m-2")
    _age_deliveries(db, 90)
    waiting = scrape(client, metrics_key)
    received = "customer_metrics_webhook_deliveries_received_total"
    assert (
        sample(waiting, received, kind="shopify", outcome="received")
        - sample(before, received, kind="shopify", outcome="received")
        == 2
    )
    assert (
        sample(waiting, received, kind="shopify", outcome="duplicate")
        - sample(before, received, kind="shopify", outcome="duplicate")
        == 1
    )
    assert sample(waiting, "customer_metrics_webhook_deliveries_unmapped") == 2
    assert sample(waiting, "customer_metrics_webhook_oldest_unmapped_delivery_age_seconds") > 89

    map_waiting(app)
    mapped = scrape(client, metrics_key)
    counted = "customer_metrics_webhook_deliveries_mapped_total"
    for outcome in ("processed", "failed"):
        assert (
            sample(mapped, counted, outcome=outcome) - sample(before, counted, outcome=outcome) == 1
        )
    assert sample(mapped, "customer_metrics_webhook_deliveries_unmapped") == 0
    assert sample(mapped, "customer_metrics_webhook_oldest_unmapped_delivery_age_seconds") == 0
    assert sample(mapped, "customer_metrics_webhook_deliveries_failed") == 1


def test_the_refresh_queue_and_the_database_pool_are_shown(client, db, metrics_key):
    with db.transaction() as session:
        session.execute(insert(StaleHistory), [{"customer_pk": pk} for pk in (1, 2, 3)])
    samples = scrape(client, metrics_key)
    assert sample(samples, "customer_metrics_purchase_history_refresh_queue") == 3

    pool = "customer_metrics_database_pool_connections"
    with db.engine.connect(), db.engine.connect():  # two held, as two slow requests would
        held = scrape(client, metrics_key)
    released = scrape(client, metrics_key)
    assert sample(held, pool, state="in_use") - sample(released, pool, state="in_use") == 2
    assert sample(released, pool, state="idle") >= 2


def test_a_connection_given_back_counts_as_idle_not_in_use(db):
    # SQLAlchemy tells of a check-in before the connection is back (found by review).
    with db.engine.connect():
        in_use = pool_gauge("in_use")
    assert pool_gauge("in_use") == in_use - 1
    assert pool_gauge("idle") >= 1


def pool_gauge(state: str) -> float | None:
    return REGISTRY.get_sample_value("customer_metrics_database_pool_connections", {"state": state})


def test_a_scrape_while_a_process_creates_its_metrics_file_is_answered(db, tmp_path, monkeypatch):
    # prometheus-client creates a process's file empty and sizes it just after; a scrape
    # in between failed whole with a struct.error (a 500 under gunicorn, seen in CI).
    (tmp_path / "counter_999.db").touch()
    monkeypatch.setenv(MULTIPROCESS_DIR, str(tmp_path))

    assert b"customer_metrics_database_up 1.0" in scrape_text(db)
