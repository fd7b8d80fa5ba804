"""What a signed delivery must be to be stored: an identity that fits whole, JSON we can read.

Every delivery here is signed as its platform signs it: the refusals are of verified
deliveries (or of their headers), never of forged ones.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from service.db import Database
from service.models import WebhookDelivery, WebhookSource
from service.webhooks.arrival import MAX_NESTING, WOO_ID_LENGTH, WOO_TOPIC_LENGTH, nesting_depth
from service.webhooks.deliveries import Delivery, store_delivery
from tests.conftest import one_backend
from tests.factories import order
from tests.webhook_payloads import (
    SHOP,
    SHOPIFY_SECRET,
    STANDARD_SECRET,
    WOO_SECRET,
    WOO_SITE,
    body_of,
    shopify_headers,
    shopify_order,
    standard_envelope,
    standard_headers,
    woo_headers,
    woo_order,
)
from tests.webhook_support import (
    PROBLEM,
    accepted,
    add_sender,
    assert_refused,
    delivery_count,
    map_waiting,
    mapped_outcome,
)

LONG = "x" * 255  # as long as an id may be: two ids that differ only after it are distinct


@pytest.fixture
def senders(db: Database) -> None:
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    add_sender(db, "woocommerce", WOO_SITE, WOO_SECRET)
    add_sender(db, "standard", "crm", STANDARD_SECRET)


def post_shopify(client: FlaskClient, body: bytes, webhook_id: str, topic: str) -> TestResponse:
    headers = shopify_headers(topic, body, webhook_id)
    return client.post("/v1/webhooks/shopify", data=body, headers=headers)


def post_woo(client: FlaskClient, body: bytes, topic: str, webhook_id: str = "17") -> TestResponse:
    headers = woo_headers("order.created", body)
    headers["X-WC-Webhook-Topic"], headers["X-WC-Webhook-ID"] = topic, webhook_id
    return client.post("/v1/webhooks/woocommerce", data=body, headers=headers)


def post_standard(client: FlaskClient, body: bytes, message_id: str) -> TestResponse:
    headers = standard_headers(body, message_id, int(time.time()))
    return client.post("/v1/webhooks/standard", data=body, headers=headers)


def assert_bad_request(response: TestResponse, field: str, where: str = "header") -> None:
    """A 400 problem+json whose error names `field`."""
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    problem: dict[str, Any] = response.json  # type: ignore[assignment]
    assert problem["errors"][0]["field"] == field, problem
    assert problem["errors"][0]["in"] == where, problem


def stored_keys(db: Database) -> list[tuple[str, str]]:
    with db.sessions() as session:
        rows = session.execute(
            select(WebhookDelivery.delivery_key, WebhookDelivery.topic).order_by(WebhookDelivery.pk)
        )
        return [(key, topic) for key, topic in rows]


# --- identities are stored whole or refused ------------------------------------------------


def test_two_shopify_deliveries_whose_ids_differ_after_255_characters_are_never_one(
    client: FlaskClient, db: Database, senders: None
) -> None:
    first = post_shopify(client, body_of(shopify_order(1)), LONG + "-a", "orders/create")
    second = post_shopify(client, body_of(shopify_order(2)), LONG + "-b", "orders/create")

    assert_bad_request(first, "X-Shopify-Webhook-Id")
    assert_bad_request(second, "X-Shopify-Webhook-Id")
    assert delivery_count(db) == 0


def test_a_shopify_id_and_topic_of_255_characters_are_stored_whole(
    client: FlaskClient, db: Database, senders: None
) -> None:
    topic = "orders/" + "t" * 248
    accepted(post_shopify(client, body_of(shopify_order(1)), LONG, topic), "ignored")
    accepted(post_shopify(client, body_of(shopify_order(2)), LONG[:-1] + "y", topic), "ignored")

    assert stored_keys(db) == [(LONG, topic), (LONG[:-1] + "y", topic)]


def test_a_shopify_topic_longer_than_255_characters_is_refused(
    client: FlaskClient, db: Database, senders: None
) -> None:
    response = post_shopify(client, body_of(shopify_order()), "wh-1", "orders/" + "t" * 249)

    assert_bad_request(response, "X-Shopify-Topic")
    assert delivery_count(db) == 0


def test_two_standard_deliveries_whose_ids_differ_after_255_characters_are_never_one(
    client: FlaskClient, db: Database, senders: None
) -> None:
    for suffix, order_id in (("-a", "o-1"), ("-b", "o-2")):
        body = body_of(standard_envelope("order", order(order_id, source="crm")))
        assert_bad_request(post_standard(client, body, LONG + suffix), "webhook-id")

    assert delivery_count(db) == 0


def test_a_standard_id_of_255_characters_is_stored_whole(
    client: FlaskClient, db: Database, senders: None
) -> None:
    body = body_of(standard_envelope("order", order("o-1", source="crm")))
    accepted(post_standard(client, body, LONG))

    assert stored_keys(db) == [(LONG, "order.upserted")]


def test_a_standard_type_longer_than_255_characters_is_refused(
    client: FlaskClient, db: Database, senders: None
) -> None:
    body = body_of({"type": "order." + "u" * 250, "data": order("o-1", source="crm")})

    assert_bad_request(post_standard(client, body, "msg_1"), "type", "body")
    assert delivery_count(db) == 0


def test_two_woocommerce_deliveries_with_a_long_topic_are_never_one(
    client: FlaskClient, db: Database, senders: None
) -> None:
    # The key is "17:{topic}:{sha256 of the body}": cut at 255, the body's hash went first.
    topic = "action." + "a" * 240
    first = post_woo(client, body_of(woo_order(727)), topic)
    second = post_woo(client, body_of(woo_order(728)), topic)

    assert_bad_request(first, "X-WC-Webhook-Topic")
    assert_bad_request(second, "X-WC-Webhook-Topic")
    assert delivery_count(db) == 0


def test_a_woocommerce_webhook_id_that_does_not_fit_the_key_is_refused(
    client: FlaskClient, db: Database, senders: None
) -> None:
    response = post_woo(client, body_of(woo_order()), "order.created", "9" * (WOO_ID_LENGTH + 1))

    assert_bad_request(response, "X-WC-Webhook-ID")
    assert delivery_count(db) == 0


def test_the_longest_woocommerce_webhook_id_and_topic_make_a_key_that_is_stored_whole(
    client: FlaskClient, db: Database, senders: None
) -> None:
    topic = "action." + "a" * (WOO_TOPIC_LENGTH - len("action."))
    webhook_id = "9" * WOO_ID_LENGTH
    accepted(post_woo(client, body_of(woo_order(727)), topic, webhook_id), "ignored")
    accepted(post_woo(client, body_of(woo_order(728)), topic, webhook_id), "ignored")

    [(first, _), (second, _)] = stored_keys(db)
    assert len(first) == len(second) == 255
    assert first.startswith(f"{webhook_id}:{topic}:") and first != second


# --- bodies nested deeper than any platform's payload ------------------------------------


def nested(depth: int) -> bytes:
    """A JSON object whose arrays and objects nest `depth` levels deep."""
    return b'{"id": 1, "a": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


SENDS = {
    "shopify": lambda client, body: post_shopify(client, body, "wh-1", "orders/create"),
    "woocommerce": lambda client, body: post_woo(client, body, "order.created"),
    "standard": lambda client, body: post_standard(client, body, "msg_1"),
}


@one_backend
@pytest.mark.parametrize("kind", SENDS)
@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 10_000])
def test_a_signed_body_nested_too_deep_is_refused_and_nothing_is_stored(
    client: FlaskClient, db: Database, senders: None, kind: str, depth: int
) -> None:
    response = SENDS[kind](client, nested(depth))

    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    assert f"deeper than {MAX_NESTING} levels" in response.json["detail"]
    assert delivery_count(db) == 0


@pytest.mark.parametrize("kind", SENDS)
def test_a_signed_body_nested_as_deep_as_allowed_is_stored(
    client: FlaskClient, db: Database, senders: None, kind: str
) -> None:
    response = SENDS[kind](client, nested(MAX_NESTING))

    accepted(response, "failed")  # not an order any mapper knows, but kept with its reason
    assert delivery_count(db) == 1


@one_backend
@pytest.mark.parametrize("kind", SENDS)
def test_a_signed_body_with_a_number_too_large_to_read_is_refused(
    client: FlaskClient, db: Database, senders: None, kind: str
) -> None:
    response = SENDS[kind](client, b'{"id": 1, "total": 1e9999999999999999999}')

    assert response.status_code == 400, response.get_data(as_text=True)
    assert delivery_count(db) == 0


@one_backend
def test_a_forged_deep_body_is_refused_as_forged_before_it_is_read(
    client: FlaskClient, db: Database, senders: None
) -> None:
    body = nested(10_000)
    headers = shopify_headers("orders/create", body, "wh-1", secret="not-the-secret")

    assert_refused(client.post("/v1/webhooks/shopify", data=body, headers=headers))


@pytest.mark.parametrize(
    ("value", "depth"),
    [
        (b"1", 0),
        (b'"[[{"', 0),
        (b"[]", 1),
        (b'{"a": [1, {"b": {}}]}', 4),
        (b"[[], [[[]]], []]", 4),
        (b'["\\"[[", {"k]\\\\": [], "\\u005b": "}"}]', 3),
    ],
)
def test_nesting_depth_counts_arrays_and_objects_outside_strings(value: bytes, depth: int) -> None:
    json.loads(value)  # valid JSON: the depth is read only once the body parsed
    assert nesting_depth(value) == depth


# --- a timestamp too large for any clock ---------------------------------------------------


@one_backend
@pytest.mark.parametrize("written", ["9" * 400, "{now:_}"], ids=["400-digits", "underscores"])
def test_a_standard_timestamp_that_is_not_plain_unix_seconds_is_refused(
    client: FlaskClient, db: Database, senders: None, written: str
) -> None:
    body = body_of(standard_envelope("order", order("o-1", source="crm")))
    now = int(time.time())
    headers = standard_headers(body, "msg_1", now)  # signed over the plain digits
    headers["webhook-timestamp"] = written.format(now=now)

    problem = assert_refused(client.post("/v1/webhooks/standard", data=body, headers=headers))
    assert "webhook-timestamp" in problem["detail"]
    assert delivery_count(db) == 0


@pytest.mark.parametrize(
    "body", [nested(10_000), b'{"id": 1, "total": 1e9999999999999999999}'], ids=["deep", "huge"]
)
def test_an_unreadable_body_stored_before_the_intake_refused_it_fails_with_its_reason(
    app: Flask, db: Database, senders: None, body: bytes
) -> None:
    with db.sessions() as session:
        source_pk = session.scalar(select(WebhookSource.pk).where(WebhookSource.kind == "shopify"))
    delivery = Delivery(source_pk, "shopify", f"shopify:{SHOP}", "wh-1", "orders/create", body, {})
    with db.autocommitting() as connection:
        stored = store_delivery(connection, delivery, datetime.now(UTC))
    assert stored is not None

    map_waiting(app)

    assert mapped_outcome(db, stored.delivery_pk) == {
        "delivery_id": stored.delivery_pk,
        "status": "failed",
        "detail": "the body is JSON this service cannot read (nesting or a number too large)",
    }


# --- found by review: bodies the checks above must not miss --------------------------------


@one_backend
@pytest.mark.parametrize("kind", SENDS)
def test_a_signed_body_with_an_integer_too_long_for_python_is_refused(
    client: FlaskClient, db: Database, senders: None, kind: str
) -> None:
    # Valid JSON; Python refuses to convert integers of more than 4300 digits.
    response = SENDS[kind](client, b'{"id": 1, "total": ' + b"9" * 5000 + b"}")

    assert response.status_code == 400, response.get_data(as_text=True)
    assert delivery_count(db) == 0


@pytest.mark.parametrize("kind", SENDS)
@pytest.mark.parametrize("depth", [1, 500])
def test_a_signed_body_in_utf16_is_not_json_to_the_service(
    client: FlaskClient, db: Database, senders: None, kind: str, depth: int
) -> None:
    # JSON is UTF-8 (RFC 8259). json.loads would read this UTF-16 text, whose U+225B has a
    # '"' byte that hid every bracket after it from the nesting scan.
    body = ("[" * depth + '"\u225b"' + "]" * depth).encode("utf-16-le")

    response = SENDS[kind](client, body)

    accepted(response, "failed")  # kept as received, with its reason
    assert "not JSON" in mapped_outcome(db, response.json["delivery_id"])["detail"]


@pytest.mark.parametrize("kind", ["\u0000", "order\u0000.upserted", "\ud800"])
def test_a_standard_type_the_databases_cannot_store_is_refused(
    client: FlaskClient, db: Database, senders: None, kind: str
) -> None:
    body = json.dumps({"type": kind, "data": order("o-1")}).encode()

    assert_bad_request(post_standard(client, body, "msg_1"), "type", "body")
    assert delivery_count(db) == 0


# --- what is checked first -----------------------------------------------------------------


def test_a_shopify_delivery_missing_a_header_is_refused_for_it_before_its_body_is_read(
    client: FlaskClient, senders: None, db: Database
) -> None:
    """The headers name the delivery: without one the answer names it, whatever the body
    (even one past MAX_BODY_BYTES, which is then never read)."""
    body = b"x" * 300_000  # the test app's MAX_BODY_BYTES is 256,000
    headers = shopify_headers("orders/create", body, "wh-no-shop")
    del headers["X-Shopify-Shop-Domain"]

    response = client.post("/v1/webhooks/shopify", data=body, headers=headers)

    assert_bad_request(response, "X-Shopify-Shop-Domain")
    assert delivery_count(db) == 0
