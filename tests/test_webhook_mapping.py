"""Mapping stored deliveries many at a time: the same records as one at a time.

Also the background mapper thread, the one-mapper-at-a-time lock and the
per-process cache of senders' secrets.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select, text, update
from werkzeug.test import TestResponse

from service.app import create_app
from service.config import Settings
from service.db import Database
from service.ingestion.rounds import in_rounds
from service.models import Customer, Order, WebhookDelivery, WebhookSecret
from service.webhooks import apply as apply_module
from service.webhooks.mapping import MAPPER_LOCK, map_all_received, map_received, waiting
from tests.webhook_payloads import (
    SHOPIFY_SECRET,
    body_of,
    guest_id,
    shopify_customer,
    shopify_headers,
    shopify_order,
    shopify_redact,
)
from tests.webhook_support import accepted, add_sender, assert_refused, deliver_shopify

ONE_BY_ONE = "one-by-one.myshopify.com"
IN_ONE_PASS = "one-pass.myshopify.com"


# --- rounds --------------------------------------------------------------------------------


def test_rounds_keep_each_records_deliveries_in_arrival_order_and_put_others_together() -> None:
    items = ["a1", "b1", "a2", "c1", "a3", "b2"]  # letter: the record touched

    rounds = in_rounds(items, keys_of=lambda item: [item[0]], is_barrier=lambda _: False)

    assert rounds == [["a1", "b1", "c1"], ["a2", "b2"], ["a3"]]


def test_an_erasure_is_a_round_of_its_own_between_what_came_before_and_after() -> None:
    items = ["a1", "b1", "X", "a2", "c1"]

    rounds = in_rounds(items, keys_of=lambda item: [item[0]], is_barrier=lambda i: i == "X")

    assert rounds == [["a1", "b1"], ["X"], ["a2", "c1"]]


def test_an_item_touching_two_records_waits_for_both() -> None:
    items = [("a",), ("b",), ("b",), ("a", "b"), ("c",)]

    rounds = in_rounds(items, keys_of=lambda item: item, is_barrier=lambda _: False)

    assert rounds == [[("a",), ("b",), ("c",)], [("b",)], [("a", "b")]]


# --- many at once equals one by one ---------------------------------------------------------


def _sequence() -> list[tuple[str, Any]]:
    """Deliveries touching the same customers and orders again and again, out of order,
    with an erasure in the middle, a late update after it, a guest, an ignored topic
    and one that fails."""
    alice, bob = 501, 502
    a = shopify_customer(alice, email="alice@example.com")
    b = shopify_customer(bob, email="bob@example.com", country_code="US")
    return [
        ("customers/create", a),
        ("orders/create", shopify_order(9001, customer=a, financial_status="pending")),
        ("orders/create", shopify_order(9002, customer=b, landing_site="/?utm_source=tiktok")),
        (
            "orders/paid",
            shopify_order(9001, customer=a, updated_at="2024-03-01T10:05:00-05:00"),
        ),
        ("orders/create", shopify_order(9003, guest=True, email="Guest@Example.com")),
        # An older state of 9001, delivered late: stale.
        ("orders/updated", shopify_order(9001, customer=a, financial_status="pending")),
        ("orders/create", shopify_order(9004, customer=b, created_at="2024-03-02T09:00:00Z")),
        ("customers/redact", shopify_redact(bob, [9002, 9004])),
        ("orders/updated", shopify_order(9002, customer=b)),  # after the erasure: ignored
        ("orders/create", shopify_order(9005, customer=a, currency="EUR")),  # fails
        ("products/update", {"id": 1}),  # ignored
        ("orders/create", shopify_order(9006, guest=True, email="guest@example.com ")),
        (
            "customers/update",
            shopify_customer(alice, updated_at="2024-04-01T00:00:00Z", country_code="DE"),
        ),
    ]


def _records(db: Database, shop: str) -> dict[str, Any]:
    source = f"shopify:{shop}"
    with db.sessions() as session:
        customers = session.execute(
            select(
                Customer.external_id,
                Customer.acquisition_channel,
                Customer.country,
                Customer.stub,
                Customer.created_at,
                Customer.updated_at,
            )
            .where(Customer.source == source)
            .order_by(Customer.external_id)
        ).all()
        orders = session.execute(
            select(
                Order.external_id,
                Customer.external_id,
                Order.placed_at,
                Order.total_minor,
                Order.refunded_minor,
                Order.status,
                Order.updated_at,
            )
            .join(Customer, Customer.pk == Order.customer_pk)
            .where(Order.source == source)
            .order_by(Order.external_id)
        ).all()
        deliveries = session.execute(
            text(
                "SELECT d.topic, d.status, d.error, d.attempts FROM webhook_deliveries d"
                " JOIN webhook_sources s ON s.pk = d.source_pk WHERE s.name = :shop"
                " ORDER BY d.pk"
            ),
            {"shop": shop},
        ).all()
    return {"customers": customers, "orders": orders, "deliveries": deliveries}


def _post(client: FlaskClient, shop: str, topic: str, payload: Any, n: int) -> TestResponse:
    body = body_of(payload)
    headers = shopify_headers(topic, body, f"{shop}-{n}", SHOPIFY_SECRET, shop)
    return client.post("/v1/webhooks/shopify", data=body, headers=headers)


def test_mapping_many_deliveries_in_one_pass_stores_what_mapping_each_on_arrival_does(
    app: Flask, client: FlaskClient, db: Database
) -> None:
    add_sender(db, "shopify", ONE_BY_ONE, SHOPIFY_SECRET)
    add_sender(db, "shopify", IN_ONE_PASS, SHOPIFY_SECRET)
    storing_only = FlaskClient(app)  # answers, and leaves the mapping for later
    outcomes = {8: "ignored", 9: "failed", 10: "ignored"}
    for n, (topic, payload) in enumerate(_sequence()):
        accepted(_post(client, ONE_BY_ONE, topic, payload, n), outcomes.get(n, "processed"))
    for n, (topic, payload) in enumerate(_sequence()):
        assert _post(storing_only, IN_ONE_PASS, topic, payload, n).json["status"] == "received"

    counts = map_received(db, app.extensions["customer_metrics.parser"])

    assert counts == {"processed": 10, "ignored": 2, "failed": 1}
    one_by_one, in_one_pass = _records(db, ONE_BY_ONE), _records(db, IN_ONE_PASS)
    assert in_one_pass == one_by_one
    # What the sequence leaves, so the comparison cannot pass on two empty sets: alice
    # with her first order's channel and her latest country; one guest (the two guest
    # e-mails are the same once normalised); bob and his orders erased; 9001 paid.
    guest = guest_id("guest@example.com")
    assert [c[:4] for c in in_one_pass["customers"]] == [
        ("501", "newsletter", "DE", False),
        (guest, "newsletter", "US", False),  # the billing address of a guest order
    ]
    assert [(o[0], o[1], o[5]) for o in in_one_pass["orders"]] == [
        ("9001", "501", "completed"),
        ("9003", guest, "completed"),
        ("9006", guest, "completed"),
    ]


def test_a_round_that_fails_as_a_whole_is_applied_one_by_one_and_only_the_culprit_fails(
    app: Flask, client: FlaskClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_sender(db, "shopify", IN_ONE_PASS, SHOPIFY_SECRET)
    storing_only = FlaskClient(app)
    for n in range(3):
        _post(storing_only, IN_ONE_PASS, "orders/create", shopify_order(7000 + n, guest=True), n)
    apply_parsed = apply_module.apply_parsed

    def breaks_on_order_7001(session: Any, deliveries: Any, now: datetime) -> Any:
        # A stand-in for a bug that only one delivery's records trigger.
        if any(r.id == "7001" for changes in deliveries for r in changes.orders):
            raise RuntimeError("a bug")
        return apply_parsed(session, deliveries, now)

    monkeypatch.setattr("service.webhooks.mapping.apply_parsed", breaks_on_order_7001)

    counts = map_received(db, app.extensions["customer_metrics.parser"])

    assert counts == {"processed": 2, "failed": 1}
    records = _records(db, IN_ONE_PASS)
    assert [o[0] for o in records["orders"]] == ["7000", "7002"]
    assert [d[1:3] for d in records["deliveries"]] == [
        ("processed", None),
        ("failed", "internal error: RuntimeError"),
        ("processed", None),
    ]


def test_large_backlogs_are_mapped_in_chunks_until_none_is_left(
    app: Flask, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_sender(db, "shopify", IN_ONE_PASS, SHOPIFY_SECRET)
    storing_only = FlaskClient(app)
    for n in range(7):
        _post(storing_only, IN_ONE_PASS, "orders/create", shopify_order(7100 + n, guest=True), n)
    monkeypatch.setattr("service.webhooks.mapping.CHUNK", 3)

    assert waiting(db, up_to=5)[0] == 5
    counts = map_all_received(db, app.extensions["customer_metrics.parser"])

    assert counts == {"processed": 7}
    assert waiting(db, up_to=5) == (0, 0.0)
    assert len(_records(db, IN_ONE_PASS)["orders"]) == 7


def test_the_age_of_the_oldest_waiting_delivery_is_reported(app: Flask, db: Database) -> None:
    add_sender(db, "shopify", IN_ONE_PASS, SHOPIFY_SECRET)
    _post(FlaskClient(app), IN_ONE_PASS, "orders/create", shopify_order(7200, guest=True), 0)
    with db.transaction() as session:
        session.execute(
            update(WebhookDelivery).values(received_at=datetime.now(UTC) - timedelta(seconds=30))
        )

    count, age = waiting(db, up_to=10)

    assert count == 1
    assert 30 <= age < 60


def test_only_one_mapper_maps_at_a_time(app: Flask, db: Database, backend: str) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite's single writer lock already lets one mapper write at a time")
    add_sender(db, "shopify", IN_ONE_PASS, SHOPIFY_SECRET)
    _post(FlaskClient(app), IN_ONE_PASS, "orders/create", shopify_order(7300, guest=True), 0)
    parser = app.extensions["customer_metrics.parser"]
    with db.engine.connect() as other_mapper:
        other_mapper.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MAPPER_LOCK})
        try:
            assert map_received(db, parser) is None
            assert map_all_received(db, parser) is None
        finally:
            other_mapper.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MAPPER_LOCK})
    assert map_received(db, parser) == {"processed": 1}


# --- the background mapper thread ----------------------------------------------------------


@pytest.fixture
def threaded_app(settings: Settings, app: Flask) -> Iterator[Flask]:
    """The app as a plain WSGI server runs it: a mapper thread maps what is stored.

    (`app` is requested so the tables are emptied afterwards.)
    """
    threaded = create_app(dataclasses.replace(settings, webhook_mapper="thread"))
    yield threaded
    threaded.extensions["customer_metrics.mapper"].stop()
    threaded.extensions["customer_metrics.db"].engine.dispose()


def test_the_mapper_thread_maps_a_stored_delivery_within_seconds(
    threaded_app: Flask, db: Database
) -> None:
    add_sender(db, "shopify", IN_ONE_PASS, SHOPIFY_SECRET)
    plain = FlaskClient(threaded_app)

    response = _post(plain, IN_ONE_PASS, "orders/create", shopify_order(7400, guest=True), 0)

    assert response.json["status"] == "received"
    deadline = time.monotonic() + 15
    while _records(db, IN_ONE_PASS)["deliveries"] != [("orders/create", "processed", None, 1)]:
        assert time.monotonic() < deadline, _records(db, IN_ONE_PASS)
        time.sleep(0.05)
    assert [o[0] for o in _records(db, IN_ONE_PASS)["orders"]] == ["7400"]


def test_the_mapper_thread_maps_what_a_stopped_process_left_when_it_starts(
    app: Flask, threaded_app: Flask, db: Database
) -> None:
    add_sender(db, "shopify", IN_ONE_PASS, SHOPIFY_SECRET)
    _post(FlaskClient(app), IN_ONE_PASS, "orders/create", shopify_order(7500, guest=True), 0)

    threaded_app.extensions["customer_metrics.mapper"].start()  # as post_worker_init does

    deadline = time.monotonic() + 15
    while not _records(db, IN_ONE_PASS)["orders"]:
        assert time.monotonic() < deadline, _records(db, IN_ONE_PASS)
        time.sleep(0.05)


# --- senders remembered for a moment --------------------------------------------------------


def _statements(db: Database) -> list[str]:
    seen: list[str] = []

    def remember(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split())[:60])

    event.listen(db.engine, "before_cursor_execute", remember)
    return seen


def test_a_delivery_from_a_remembered_sender_costs_one_statement(
    client: FlaskClient, db: Database
) -> None:
    add_sender(db, "shopify", IN_ONE_PASS, SHOPIFY_SECRET)
    accepted(_post(client, IN_ONE_PASS, "orders/create", shopify_order(7600, guest=True), 0))
    seen = _statements(db)

    answer = _post(FlaskClient(client.application), IN_ONE_PASS, "orders/create", {"id": 1}, 1)

    assert answer.json["status"] == "received"
    written = [s for s in seen if not s.startswith("select pg_catalog.version")]
    assert len([s for s in written if "webhook_deliveries" in s]) == 1, seen
    assert not [s for s in written if "webhook_secrets k" in s], seen  # no sender lookup


def test_a_remembered_secret_that_was_removed_is_refused_at_once(
    client: FlaskClient, db: Database
) -> None:
    add_sender(db, "shopify", IN_ONE_PASS, "first-secret")
    shop = {"secret": "first-secret", "shop": IN_ONE_PASS}
    accepted(deliver_shopify(client, "orders/create", shopify_order(7700, guest=True), **shop))
    with db.transaction() as session:  # what `webhooks rotate --grace-hours 0` leaves
        session.execute(update(WebhookSecret).values(expires_at=datetime.now(UTC)))
    assert_refused(deliver_shopify(client, "orders/create", shopify_order(7701), **shop))


def test_a_new_secret_verifies_at_once_though_the_sender_is_remembered(
    client: FlaskClient, db: Database
) -> None:
    add_sender(db, "shopify", IN_ONE_PASS, "first-secret")
    accepted(
        deliver_shopify(
            client, "orders/create", shopify_order(7800), secret="first-secret", shop=IN_ONE_PASS
        )
    )
    with db.transaction() as session:
        source_pk = session.scalar(select(WebhookSecret.source_pk))
        session.add(
            WebhookSecret(source_pk=source_pk, secret="second", created_at=datetime.now(UTC))
        )

    accepted(
        deliver_shopify(
            client, "orders/create", shopify_order(7801), secret="second", shop=IN_ONE_PASS
        )
    )


def test_a_delivery_is_stored_with_the_platforms_headers_only(
    client: FlaskClient, db: Database
) -> None:
    add_sender(db, "shopify", IN_ONE_PASS, SHOPIFY_SECRET)

    accepted(_post(client, IN_ONE_PASS, "orders/create", shopify_order(7900, guest=True), 0))

    with db.sessions() as session:
        headers = session.scalar(select(WebhookDelivery.headers))
    assert headers == {
        "x-shopify-topic": "orders/create",
        "x-shopify-hmac-sha256": headers["x-shopify-hmac-sha256"],
        "x-shopify-shop-domain": IN_ONE_PASS,
        "x-shopify-api-version": "2026-07",
        "x-shopify-webhook-id": f"{IN_ONE_PASS}-0",
        "x-shopify-triggered-at": "2024-03-01T10:00:05.000000Z",
        "x-shopify-event-id": f"evt-{IN_ONE_PASS}-0",
    }
    assert len(headers["x-shopify-hmac-sha256"]) == 44  # base64 of 32 bytes
