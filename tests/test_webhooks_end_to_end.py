"""Webhooks end to end: the metrics they produce, concurrent copies, and a failure replayed."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from service.db import Database
from service.ingestion.records import RecordParser
from service.models import Customer, Order
from service.webhooks.mapping import replay_delivery
from tests.conftest import Api
from tests.factories import customer, order
from tests.webhook_payloads import (
    SHOP,
    SHOPIFY_SECRET,
    STANDARD_SECRET,
    WOO_SECRET,
    WOO_SITE,
    body_of,
    guest_id,
    shopify_customer,
    shopify_headers,
    shopify_order,
    shopify_order_deleted,
    shopify_refund,
    standard_envelope,
    standard_headers,
    woo_headers,
    woo_order,
)
from tests.webhook_support import (
    accepted,
    add_sender,
    deliver_shopify,
    deliver_standard,
    delivery_count,
    stored_deliveries,
)

SHOPIFY_SOURCE = f"shopify:{SHOP}"
THREADS = 8


def metrics(api: Api, path: str = "/v1/metrics", **params: Any) -> dict[str, Any]:
    response = api.get(path, start="2024-01-01", end="2024-06-30", **params)
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.json
    return body


def assert_same_metrics(api: Api, webhook_source: str, rest_source: str, **params: Any) -> None:
    """Every field of every period equal; only the echoed source filter differs."""
    for path in ("/v1/metrics", "/v1/metrics/summary"):
        from_webhooks = metrics(api, path, source=webhook_source, **params)
        from_rest = metrics(api, path, source=rest_source, **params)
        assert from_webhooks["filters"].pop("source") == webhook_source
        assert from_rest["filters"].pop("source") == rest_source
        assert from_webhooks == from_rest


# --- webhooks and REST give the same metrics ----------------------------------------------


def test_standard_webhook_envelopes_give_the_metrics_of_the_same_records_sent_over_rest(
    client: Any, api: Api, db: Database
) -> None:
    add_sender(db, "standard", "crm", STANDARD_SECRET)
    customers = [
        customer("c-1", acquisition_channel="Google", country="pl"),
        customer("c-2", acquisition_channel="newsletter", country="de"),
        customer("c-3", acquisition_channel="google", country="pl"),
    ]
    orders = [
        order("o-1", customer_id="c-1", placed_at="2024-01-05T10:00:00Z", total="40.00"),
        order("o-2", customer_id="c-1", placed_at="2024-02-07T10:00:00Z", total="60.00"),
        order("o-3", customer_id="c-2", placed_at="2024-01-20T10:00:00Z", total="25.50"),
        order(
            "o-4",
            customer_id="c-2",
            placed_at="2024-04-02T10:00:00Z",
            total="80.00",
            refunded="30.00",
        ),
        order("o-5", customer_id="c-3", placed_at="2024-03-03T10:00:00Z", status="pending"),
        order("o-6", customer_id="c-3", placed_at="2024-05-30T23:59:59Z", total="15.00"),
        order("o-7", customer_id="c-3", placed_at="2024-03-10T10:00:00Z", test=True),
    ]

    for record in customers:
        accepted(deliver_standard(client, standard_envelope("customer", record)))
    for record in orders:
        accepted(deliver_standard(client, standard_envelope("order", record)))
    assert (
        api.post("/v1/customers", [dict(c, source="crm-rest") for c in customers]).status_code
        == 200
    )
    assert api.post("/v1/orders", [dict(o, source="crm-rest") for o in orders]).status_code == 200

    periods = metrics(api, source="crm", interval="month")["periods"]
    assert [p["orders"] for p in periods] == [2, 1, 0, 1, 1, 0]  # o-5 pending, o-7 a test
    assert [p["revenue"] for p in periods] == ["65.50", "60.00", "0.00", "50.00", "15.00", "0.00"]
    for interval in ("week", "month", "quarter"):
        assert_same_metrics(api, "crm", "crm-rest", interval=interval)
    assert_same_metrics(api, "crm", "crm-rest", interval="month", channel="google")
    assert_same_metrics(api, "crm", "crm-rest", interval="month", churn_window_days=30)


def shopify_deliveries() -> list[tuple[str, dict[str, Any], str]]:
    """A shop's first half-year as Shopify delivers it: (topic, body, webhook id).

    Customers: A (id 1, utm_source google), B (id 2, referred by www.facebook.com),
    a guest (Jane@Example.com, source_name web) and C (id 3), whose only order is deleted.
    """
    a = shopify_customer(1, created_at="2024-01-02T09:00:00-05:00")
    b = shopify_customer(2, created_at="2024-01-03T09:00:00-05:00", country_code="US")
    c = shopify_customer(3, created_at="2024-05-01T09:00:00-05:00")

    def placed(
        order_id: int, who: dict[str, Any] | None, at: str, total: str, **fields: Any
    ) -> dict[str, Any]:
        fields.setdefault("updated_at", at)
        fields.setdefault("landing_site", "/?utm_source=google")
        return shopify_order(
            order_id, customer=who, guest=who is None, processed_at=at, total=total, **fields
        )

    def by_b(order_id: int, at: str, total: str, **fields: Any) -> dict[str, Any]:
        referred = {"landing_site": None, "referring_site": "https://www.facebook.com/"}
        return placed(order_id, b, at, total, **referred, **fields)

    jan_20, feb_15 = "2024-01-20T12:00:00+01:00", "2024-02-15T23:30:00-05:00"
    paid_1003 = by_b(1003, jan_20, "45.00", updated_at="2024-01-21T08:00:00+01:00")
    refund = shopify_refund(1002, 77, [("refund", "success", "20.00")])
    refunded_1002 = placed(
        1002,
        a,
        feb_15,
        "50.00",
        financial_status="partially_refunded",
        refunds=[refund],
        updated_at="2024-02-20T10:00:00-05:00",
    )
    stale_1002 = placed(1002, a, feb_15, "50.00", updated_at="2024-02-16T10:00:00-05:00")
    cancelled_1007 = by_b(
        1007,
        "2024-04-01T10:00:00-04:00",
        "12.00",
        cancelled_at="2024-04-02T10:00:00-04:00",
        updated_at="2024-04-02T10:00:00-04:00",
    )
    guest = {"email": "Jane@Example.com", "landing_site": None}
    a_updated = shopify_customer(
        1, created_at="2024-01-02T09:00:00-05:00", updated_at="2024-06-01T09:00:00-04:00"
    )
    return [
        ("orders/create", placed(1001, a, "2024-01-10T12:00:00-05:00", "100.00"), "w-1"),
        ("orders/create", by_b(1003, jan_20, "45.00", financial_status="pending"), "w-2"),
        ("orders/paid", paid_1003, "w-3"),
        ("orders/create", placed(1005, None, "2024-02-01T08:00:00-05:00", "30.00", **guest), "w-4"),
        ("orders/create", placed(1002, a, feb_15, "50.00"), "w-5"),
        ("orders/updated", refunded_1002, "w-6"),
        ("orders/paid", stale_1002, "w-7"),  # older than the refund: stale, changes nothing
        ("orders/paid", paid_1003, "w-3"),  # Shopify's retry of w-3: a duplicate
        ("orders/create", placed(1006, a, "2024-03-01T10:00:00-05:00", "999.00", test=True), "w-8"),
        (
            "orders/create",
            by_b(1004, "2024-03-05T10:00:00-05:00", "35.00", financial_status="refunded"),
            "w-9",
        ),
        ("orders/create", by_b(1007, "2024-04-01T10:00:00-04:00", "12.00"), "w-10"),
        ("orders/cancelled", cancelled_1007, "w-11"),
        ("orders/create", placed(1008, c, "2024-05-10T10:00:00-04:00", "70.00"), "w-12"),
        ("orders/delete", shopify_order_deleted(1008), "w-13"),
        ("orders/create", placed(1009, a, "2024-06-30T22:00:00-04:00", "25.00"), "w-14"),
        ("customers/update", a_updated, "w-15"),
    ]


def shopify_as_rest() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What those deliveries mean, written by hand as REST records of source shopify-rest."""
    rest = "shopify-rest"
    guest = guest_id("jane@example.com")

    def buyer(customer_id: str, channel: str, country: str, **fields: Any) -> dict[str, Any]:
        return customer(
            customer_id, source=rest, acquisition_channel=channel, country=country, **fields
        )

    def bought(
        order_id: str, customer_id: str, placed_at: str, total: str, **fields: Any
    ) -> dict[str, Any]:
        return order(
            order_id,
            source=rest,
            customer_id=customer_id,
            placed_at=placed_at,
            total=total,
            **fields,
        )

    customers = [
        buyer("1", "google", "CA", created_at="2024-01-02T14:00:00Z"),
        buyer("2", "facebook.com", "US", created_at="2024-01-03T14:00:00Z"),
        buyer(guest, "web", "US"),  # the order's billing address
        buyer("3", "google", "CA", created_at="2024-05-01T13:00:00Z"),  # no order left
    ]
    orders = [
        bought("1001", "1", "2024-01-10T17:00:00Z", "100.00"),
        bought("1003", "2", "2024-01-20T11:00:00Z", "45.00"),
        bought("1005", guest, "2024-02-01T13:00:00Z", "30.00"),
        # 23:30 at -05:00 on the 15th is the 16th in UTC.
        bought("1002", "1", "2024-02-16T04:30:00Z", "50.00", refunded="20.00"),
        bought("1006", "1", "2024-03-01T15:00:00Z", "999.00", test=True),
        bought("1004", "2", "2024-03-05T15:00:00Z", "35.00", status="refunded"),
        bought("1007", "2", "2024-04-01T14:00:00Z", "12.00", status="cancelled"),
        # 22:00 at -04:00 on June 30th is July 1st in UTC: outside the half-year.
        bought("1009", "1", "2024-07-01T02:00:00Z", "25.00"),
    ]
    return customers, orders


def test_shopify_deliveries_give_the_metrics_of_the_same_orders_sent_over_rest(
    client: Any, api: Api, db: Database
) -> None:
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)

    seen: set[str] = set()
    for topic, payload, webhook_id in shopify_deliveries():
        # A webhook id seen before is Shopify's retry of the same delivery: a duplicate.
        outcome = "duplicate" if webhook_id in seen else "processed"
        accepted(deliver_shopify(client, topic, payload, webhook_id=webhook_id), outcome)
        seen.add(webhook_id)
    customers, orders = shopify_as_rest()
    assert api.post("/v1/customers", customers).status_code == 200
    assert api.post("/v1/orders", orders).status_code == 200

    months = metrics(api, source=SHOPIFY_SOURCE, interval="month")["periods"]
    # Jan: 1001 (100) and 1003 (45); Feb: 1005 (30) and 1002 (50 - 20 refunded);
    # Mar: 1006 is a test, 1004 refunded; Apr: 1007 cancelled; May: 1008 deleted.
    assert [p["orders"] for p in months] == [2, 2, 0, 0, 0, 0]
    assert [p["revenue"] for p in months] == ["145.00", "60.00", "0.00", "0.00", "0.00", "0.00"]
    for interval in ("week", "month", "quarter"):
        assert_same_metrics(api, SHOPIFY_SOURCE, "shopify-rest", interval=interval)
    for channel in ("google", "facebook.com", "web"):
        assert_same_metrics(api, SHOPIFY_SOURCE, "shopify-rest", interval="month", channel=channel)
    assert_same_metrics(api, SHOPIFY_SOURCE, "shopify-rest", interval="month", country="US")


# --- concurrent copies (PostgreSQL) -------------------------------------------------------


def signed_copy(kind: str) -> tuple[str, bytes, dict[str, str]]:
    """One delivery of each kind, signed once, to be sent by many clients at once."""
    if kind == "shopify":
        body = body_of(shopify_order())
        return "/v1/webhooks/shopify", body, shopify_headers("orders/create", body, "wh-race")
    if kind == "woocommerce":
        body = body_of(woo_order())
        return "/v1/webhooks/woocommerce", body, woo_headers("order.created", body)
    body = body_of(standard_envelope("order", order("o-race")))
    return "/v1/webhooks/standard", body, standard_headers(body, "msg_race", int(time.time()))


@pytest.mark.parametrize("kind", ["shopify", "woocommerce", "standard"])
def test_the_same_signed_delivery_sent_by_eight_clients_at_once_is_stored_and_applied_once(
    app: Flask, db: Database, backend: str, kind: str
) -> None:
    if backend == "sqlite":
        pytest.skip(
            "SQLite allows one writer at a time, so concurrent copies cannot race there; "
            "the unique (sender, delivery key) constraint is exercised on PostgreSQL"
        )
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    add_sender(db, "woocommerce", WOO_SITE, WOO_SECRET)
    add_sender(db, "standard", "crm", STANDARD_SECRET)
    path, body, headers = signed_copy(kind)
    start = threading.Barrier(THREADS)

    def send(_: int) -> tuple[int, str]:
        client = app.test_client()
        start.wait()  # release every copy at the same moment
        response = client.post(path, data=body, headers=headers)
        return response.status_code, response.get_data(as_text=True)

    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(send, range(THREADS)))

    assert all(code == 200 for code, _ in answers), answers
    outcomes = sorted(json.loads(text)["status"] for _, text in answers)
    assert outcomes == ["duplicate"] * (THREADS - 1) + ["received"], answers
    assert delivery_count(db) == 1
    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 1
        assert session.scalar(select(func.count()).select_from(Customer)) == 1


# --- a mapping failure, processed later ----------------------------------------------------


def test_a_failed_delivery_is_processed_when_attempted_again_under_its_currency(
    client: Any, api: Api, db: Database
) -> None:
    add_sender(db, "woocommerce", WOO_SITE, WOO_SECRET)
    body = body_of(woo_order(currency="EUR", total="19.99"))
    response = client.post(
        "/v1/webhooks/woocommerce", data=body, headers=woo_headers("order.created", body)
    )
    answer = accepted(response, "failed")
    assert "EUR is not this deployment's reporting currency (USD)" in answer["detail"]

    # The stored raw delivery, attempted again by a deployment that reports in EUR.
    outcome = replay_delivery(db, answer["delivery_id"], RecordParser("EUR"), datetime.now(UTC))

    assert (outcome.status, outcome.detail) == ("processed", None)
    found = api.get(f"/v1/orders/woocommerce:{WOO_SITE}/727").json
    assert (found["currency"], found["total"], found["status"]) == ("EUR", "19.99", "completed")
    assert stored_deliveries(db) == [("order.created", "processed", None, 2)]
