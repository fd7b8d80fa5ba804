"""Shopify deliveries: signed like Shopify signs them, read back through the REST API."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from service.db import Database
from service.webhooks.signatures import body_signature
from tests.conftest import Api, one_backend
from tests.webhook_payloads import (
    SHOP,
    SHOPIFY_CUSTOMER_ID,
    SHOPIFY_ORDER_ID,
    SHOPIFY_SECRET,
    base64_hmac,
    body_of,
    guest_id,
    shopify_customer,
    shopify_headers,
    shopify_order,
    shopify_order_deleted,
    shopify_redact,
    shopify_refund,
)
from tests.webhook_support import (
    accepted,
    add_sender,
    assert_refused,
    deliver_shopify,
    delivery_count,
    record_tables_text,
    stored_deliveries,
)

SOURCE = f"shopify:{SHOP}"
ORDER = str(SHOPIFY_ORDER_ID)
CUSTOMER = str(SHOPIFY_CUSTOMER_ID)


@pytest.fixture
def shop(db: Database) -> str:
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    return SHOP


def read_order(api: Api, order_id: str = ORDER) -> dict[str, Any]:
    response = api.get(f"/v1/orders/{SOURCE}/{order_id}")
    assert response.status_code == 200, response.json
    found: dict[str, Any] = response.json
    found.pop("ingested_at")
    return found


def read_customer(api: Api, customer_id: str = CUSTOMER) -> dict[str, Any]:
    response = api.get(f"/v1/customers/{SOURCE}/{customer_id}")
    assert response.status_code == 200, response.json
    found: dict[str, Any] = response.json
    found.pop("ingested_at")
    return found


# --- signatures --------------------------------------------------------------------------


def test_the_signing_helper_and_the_service_both_reproduce_the_computed_vector() -> None:
    body = b'{"id":820982911946154508,"email":"jon@example.com","total_price":"404.95"}'

    assert base64_hmac("hush", body) == "DEfHnXBPdWfMeKHU1EFeqXlz6efsLX9cbYeGf9G5k8Q="
    assert body_signature("hush", body) == "DEfHnXBPdWfMeKHU1EFeqXlz6efsLX9cbYeGf9G5k8Q="


@one_backend
def test_a_forged_signature_is_refused_and_nothing_is_stored(
    client: FlaskClient, db: Database, shop: str
) -> None:
    body = body_of(shopify_order())
    headers = shopify_headers("orders/create", body, "wh-1")
    headers["X-Shopify-Hmac-Sha256"] = base64_hmac("not-the-secret", body)

    assert_refused(client.post("/v1/webhooks/shopify", data=body, headers=headers))
    assert delivery_count(db) == 0


@one_backend
def test_a_missing_signature_is_refused_and_nothing_is_stored(
    client: FlaskClient, db: Database, shop: str
) -> None:
    body = body_of(shopify_order())
    headers = shopify_headers("orders/create", body, "wh-1")
    del headers["X-Shopify-Hmac-Sha256"]

    assert_refused(client.post("/v1/webhooks/shopify", data=body, headers=headers))
    assert delivery_count(db) == 0


@one_backend
def test_a_body_changed_after_signing_is_refused(
    client: FlaskClient, db: Database, shop: str
) -> None:
    body = body_of(shopify_order(total="404.95"))
    headers = shopify_headers("orders/create", body, "wh-1")
    tampered = body.replace(b'"404.95"', b'"4.95"')

    assert_refused(client.post("/v1/webhooks/shopify", data=tampered, headers=headers))
    assert delivery_count(db) == 0


@one_backend
def test_a_hex_digest_instead_of_base64_is_refused(
    client: FlaskClient, db: Database, shop: str
) -> None:
    import hashlib
    import hmac

    body = body_of(shopify_order())
    headers = shopify_headers("orders/create", body, "wh-1")
    headers["X-Shopify-Hmac-Sha256"] = hmac.new(
        SHOPIFY_SECRET.encode(), body, hashlib.sha256
    ).hexdigest()

    assert_refused(client.post("/v1/webhooks/shopify", data=body, headers=headers))
    assert delivery_count(db) == 0


def test_an_unknown_shop_is_refused_even_with_a_valid_signature_and_nothing_is_stored(
    client: FlaskClient, db: Database, shop: str
) -> None:
    response = deliver_shopify(client, "orders/create", shopify_order(), shop="other.myshopify.com")

    problem = assert_refused(response)
    assert "other.myshopify.com" in problem["detail"]
    assert delivery_count(db) == 0


@pytest.mark.parametrize("missing", ["X-Shopify-Topic", "X-Shopify-Webhook-Id"])
def test_a_delivery_without_its_topic_or_webhook_id_is_malformed_and_nothing_is_stored(
    client: FlaskClient, db: Database, shop: str, missing: str
) -> None:
    body = body_of(shopify_order())
    headers = shopify_headers("orders/create", body, "wh-1")
    del headers[missing]

    response = client.post("/v1/webhooks/shopify", data=body, headers=headers)

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert missing in response.json["detail"]
    assert delivery_count(db) == 0


def test_without_any_configured_shop_every_delivery_is_refused(
    client: FlaskClient, db: Database
) -> None:
    assert_refused(deliver_shopify(client, "orders/create", shopify_order()))
    assert delivery_count(db) == 0


def test_the_shop_domain_header_is_matched_case_insensitively(
    client: FlaskClient, api: Api, shop: str
) -> None:
    accepted(deliver_shopify(client, "orders/create", shopify_order(), shop=SHOP.upper()))

    assert read_order(api)["status"] == "completed"


# --- orders --------------------------------------------------------------------------------


def test_an_order_is_stored_with_every_field_mapped(
    client: FlaskClient, api: Api, db: Database, shop: str
) -> None:
    answer = accepted(deliver_shopify(client, "orders/create", shopify_order()))

    assert answer["detail"] is None
    assert read_order(api) == {
        "id": ORDER,  # the 18-digit id kept exactly (it is above 2**53)
        "source": SOURCE,
        "customer_id": CUSTOMER,
        "placed_at": "2024-03-01T15:00:00Z",  # processed_at 10:00 at -05:00
        "currency": "USD",
        "total": "404.95",
        "refunded": "0.00",
        "status": "completed",  # financial_status paid
        "test": False,
        "updated_at": "2024-03-01T15:00:00Z",
    }
    assert read_customer(api) == {
        "id": CUSTOMER,
        "source": SOURCE,
        "created_at": "2024-02-20T14:00:00Z",
        "acquisition_channel": "newsletter",  # utm_source of landing_site, lower-cased
        "country": "CA",  # the customer's default address, not the order's billing address
        "attributes": {},
        "updated_at": None,
        "stub": False,
    }
    assert stored_deliveries(db) == [("orders/create", "processed", None, 1)]


@pytest.mark.parametrize(
    "topic", ["orders/create", "orders/updated", "orders/paid", "orders/fulfilled"]
)
def test_every_order_topic_carries_the_whole_order(
    client: FlaskClient, api: Api, shop: str, topic: str
) -> None:
    accepted(deliver_shopify(client, topic, shopify_order(total="120.00")))

    assert read_order(api)["total"] == "120.00"
    assert read_order(api)["status"] == "completed"


def test_orders_cancelled_stores_the_order_as_cancelled(
    client: FlaskClient, api: Api, shop: str
) -> None:
    accepted(deliver_shopify(client, "orders/create", shopify_order()))
    cancelled = shopify_order(
        cancelled_at="2024-03-02T08:00:00-05:00", updated_at="2024-03-02T08:00:00-05:00"
    )

    accepted(deliver_shopify(client, "orders/cancelled", cancelled))

    # Still "paid" until the money goes back; cancelled_at alone makes it cancelled.
    assert read_order(api)["status"] == "cancelled"
    assert read_order(api)["updated_at"] == "2024-03-02T13:00:00Z"


def test_placed_at_falls_back_to_created_at_without_processed_at(
    client: FlaskClient, api: Api, shop: str
) -> None:
    accepted(deliver_shopify(client, "orders/create", shopify_order(processed_at=None)))

    assert read_order(api)["placed_at"] == "2024-03-01T14:58:00Z"  # created_at 09:58 at -05:00


@pytest.mark.parametrize(
    ("financial_status", "status"),
    [
        ("paid", "completed"),
        ("partially_paid", "completed"),
        ("partially_refunded", "completed"),
        ("pending", "pending"),
        ("authorized", "pending"),
        ("refunded", "refunded"),
        ("voided", "cancelled"),
    ],
)
def test_financial_status_maps_to_the_order_status(
    client: FlaskClient, api: Api, shop: str, financial_status: str, status: str
) -> None:
    accepted(
        deliver_shopify(client, "orders/updated", shopify_order(financial_status=financial_status))
    )

    assert read_order(api)["status"] == status


def test_a_cancelled_at_cancels_an_order_whatever_its_financial_status(
    client: FlaskClient, api: Api, shop: str
) -> None:
    order = shopify_order(financial_status="paid", cancelled_at="2024-03-01T11:00:00-05:00")

    accepted(deliver_shopify(client, "orders/updated", order))

    assert read_order(api)["status"] == "cancelled"


def test_the_net_amount_counts_only_successful_refund_transactions(
    client: FlaskClient, api: Api, shop: str
) -> None:
    refunds = [
        # 75.00 + 10.00 went back; a failed attempt and a non-refund transaction did not.
        shopify_refund(
            SHOPIFY_ORDER_ID,
            890088186047892319,
            [("refund", "success", "75.00"), ("refund", "failure", "5.00")],
        ),
        shopify_refund(
            SHOPIFY_ORDER_ID,
            890088186047892320,
            [("refund", "success", "10.00"), ("sale", "success", "3.00")],
            with_amount_set=True,
        ),
    ]
    order = shopify_order(financial_status="partially_refunded", refunds=refunds)

    accepted(deliver_shopify(client, "orders/updated", order))

    found = read_order(api)
    assert (found["total"], found["refunded"], found["status"]) == ("404.95", "85.00", "completed")


def test_refunds_create_is_acknowledged_and_the_order_update_carries_the_refund(
    client: FlaskClient, api: Api, db: Database, shop: str
) -> None:
    accepted(deliver_shopify(client, "orders/create", shopify_order()))
    refund = shopify_refund(SHOPIFY_ORDER_ID, 890088186047892319, [("refund", "success", "75.00")])

    answer = accepted(deliver_shopify(client, "refunds/create", refund), "ignored")

    # Applying a refund alone could count it twice with the orders/updated that follows.
    assert "orders/updated" in answer["detail"]
    assert read_order(api)["refunded"] == "0.00"
    updated = shopify_order(
        financial_status="partially_refunded",
        refunds=[refund],
        updated_at="2024-03-05T12:00:01-05:00",
    )
    accepted(deliver_shopify(client, "orders/updated", updated))
    assert read_order(api)["refunded"] == "75.00"
    assert [status for _, status, _, _ in stored_deliveries(db)] == [
        "processed",
        "ignored",
        "processed",
    ]


def test_a_test_order_is_stored_as_a_test_order(client: FlaskClient, api: Api, shop: str) -> None:
    accepted(deliver_shopify(client, "orders/create", shopify_order(test=True)))

    assert read_order(api)["test"] is True


def test_an_order_in_another_currency_is_stored_as_failed_with_a_clear_reason(
    client: FlaskClient, api: Api, db: Database, shop: str
) -> None:
    answer = accepted(
        deliver_shopify(client, "orders/create", shopify_order(currency="EUR")), "failed"
    )

    assert "EUR" in answer["detail"] and "USD" in answer["detail"]
    assert "reporting currency" in answer["detail"]
    assert api.get(f"/v1/orders/{SOURCE}/{ORDER}").status_code == 404
    ((topic, status, error, attempts),) = stored_deliveries(db)
    assert (topic, status, attempts) == ("orders/create", "failed", 1)
    assert error == answer["detail"]


def test_an_unknown_topic_is_stored_and_ignored(
    client: FlaskClient, db: Database, shop: str
) -> None:
    answer = accepted(
        deliver_shopify(client, "products/update", {"id": 632910392, "title": "IPod Nano"}),
        "ignored",
    )

    assert "products/update" in answer["detail"]
    assert stored_deliveries(db)[0][:2] == ("products/update", "ignored")


# --- guests --------------------------------------------------------------------------------


def test_a_guest_gets_a_stable_hashed_id_and_the_email_is_never_stored_in_records(
    client: FlaskClient, api: Api, db: Database, shop: str
) -> None:
    email = "  Jane.Doe@Example.COM "
    first = shopify_order(1001, guest=True, email=email)
    second = shopify_order(1002, guest=True, email="jane.doe@example.com")

    answers = [
        accepted(deliver_shopify(client, "orders/create", first)),
        accepted(deliver_shopify(client, "orders/create", second)),
    ]

    expected_id = guest_id("jane.doe@example.com")
    assert read_order(api, "1001")["customer_id"] == expected_id
    assert read_order(api, "1002")["customer_id"] == expected_id  # the same person
    assert read_customer(api, expected_id)["acquisition_channel"] == "newsletter"
    answered = [
        *(str(a) for a in answers),
        api.get("/v1/customers").get_data(as_text=True),
        api.get("/v1/orders").get_data(as_text=True),
        api.get(f"/v1/customers/{SOURCE}/{expected_id}").get_data(as_text=True),
    ]
    stored = record_tables_text(db)
    for needle in ("jane.doe", "Jane.Doe", "example.com"):
        assert needle not in stored
        assert all(needle not in text for text in answered)
    # webhook_deliveries keeps the raw body on purpose: it is the audit copy of what
    # the shop sent (and what a replay maps again); the records never hold the e-mail.


# --- acquisition channel ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("landing_site", "referring_site", "source_name", "channel"),
    [
        (
            "/?utm_source=Instagram&utm_medium=social",
            "https://google.com/search?q=x",
            "web",
            "instagram",
        ),
        (
            "/products/aviator?utm_source=",
            "https://duckduckgo.com/?q=sunglasses",
            "web",
            "duckduckgo.com",
        ),
        ("/products/aviator", "https://duckduckgo.com/", "web", "duckduckgo.com"),
        (None, None, "web", "web"),
        (None, "", "pos", "pos"),
    ],
)
def test_the_channel_is_utm_source_else_referrer_host_else_source_name(
    client: FlaskClient,
    api: Api,
    shop: str,
    landing_site: str | None,
    referring_site: str | None,
    source_name: str,
    channel: str,
) -> None:
    order = shopify_order(
        landing_site=landing_site, referring_site=referring_site, source_name=source_name
    )

    accepted(deliver_shopify(client, "orders/create", order))

    assert read_customer(api)["acquisition_channel"] == channel


def test_the_first_order_fixes_the_channel_and_later_deliveries_keep_it(
    client: FlaskClient, api: Api, shop: str
) -> None:
    accepted(
        deliver_shopify(
            client, "orders/create", shopify_order(1, landing_site="/?utm_source=tiktok")
        )
    )
    later = shopify_order(
        2,
        landing_site="/?utm_source=google",
        processed_at="2024-04-01T10:00:00-04:00",
        updated_at="2024-04-01T10:00:00-04:00",
    )
    accepted(deliver_shopify(client, "orders/create", later))
    update = shopify_customer(updated_at="2024-04-02T10:00:00-04:00", country_code="US")
    accepted(deliver_shopify(client, "customers/update", update))

    customer = read_customer(api)
    assert customer["acquisition_channel"] == "tiktok"
    assert customer["country"] == "US"  # the update did change what it carries
    assert customer["updated_at"] == "2024-04-02T14:00:00Z"


def test_a_customer_created_before_its_first_order_gets_the_channel_of_that_order(
    client: FlaskClient, api: Api, shop: str
) -> None:
    # Shopify's usual sequence: the account is made at checkout, then the order arrives.
    accepted(deliver_shopify(client, "customers/create", shopify_customer()))
    accepted(deliver_shopify(client, "orders/create", shopify_order()))

    assert read_customer(api)["acquisition_channel"] == "newsletter"


# --- customers -----------------------------------------------------------------------------


def test_customers_create_stores_the_customer_without_personal_data(
    client: FlaskClient, api: Api, db: Database, shop: str
) -> None:
    accepted(deliver_shopify(client, "customers/create", shopify_customer(email="bob@biller.com")))

    assert read_customer(api) == {
        "id": CUSTOMER,
        "source": SOURCE,
        "created_at": "2024-02-20T14:00:00Z",
        "acquisition_channel": "unknown",  # no order yet
        "country": "CA",
        "attributes": {},
        "updated_at": "2024-02-20T14:00:00Z",
        "stub": False,
    }
    assert "bob@biller.com" not in record_tables_text(db)


# --- erasure -------------------------------------------------------------------------------


def test_orders_delete_erases_the_order(client: FlaskClient, api: Api, shop: str) -> None:
    accepted(deliver_shopify(client, "orders/create", shopify_order()))

    accepted(deliver_shopify(client, "orders/delete", shopify_order_deleted(SHOPIFY_ORDER_ID)))

    assert api.get(f"/v1/orders/{SOURCE}/{ORDER}").status_code == 404
    assert read_customer(api)["id"] == CUSTOMER  # the customer stays


def test_customers_redact_erases_the_customer_and_the_listed_orders(
    client: FlaskClient, api: Api, shop: str
) -> None:
    accepted(deliver_shopify(client, "orders/create", shopify_order(SHOPIFY_ORDER_ID)))
    accepted(deliver_shopify(client, "orders/create", shopify_order(299938, guest=True)))
    accepted(
        deliver_shopify(client, "orders/create", shopify_order(555, guest=True, email="x@y.z"))
    )

    redact = shopify_redact(SHOPIFY_CUSTOMER_ID, [SHOPIFY_ORDER_ID, 299938])
    accepted(deliver_shopify(client, "customers/redact", redact))

    assert api.get(f"/v1/customers/{SOURCE}/{CUSTOMER}").status_code == 404
    assert api.get(f"/v1/orders/{SOURCE}/{ORDER}").status_code == 404
    assert api.get(f"/v1/orders/{SOURCE}/299938").status_code == 404
    assert api.get(f"/v1/orders/{SOURCE}/555").status_code == 200  # not named: kept


def test_redacting_a_customer_never_seen_is_processed_and_changes_nothing(
    client: FlaskClient, api: Api, shop: str
) -> None:
    accepted(deliver_shopify(client, "orders/create", shopify_order()))

    accepted(deliver_shopify(client, "customers/redact", shopify_redact(191167, [])))

    assert read_order(api)["status"] == "completed"


def test_an_older_order_update_delivered_after_orders_delete_does_not_bring_it_back(
    client: FlaskClient, api: Api, shop: str
) -> None:
    accepted(deliver_shopify(client, "orders/create", shopify_order()))
    accepted(deliver_shopify(client, "orders/delete", shopify_order_deleted(SHOPIFY_ORDER_ID)))

    late = accepted(deliver_shopify(client, "orders/updated", shopify_order()), "ignored")
    assert "erased" in late["detail"]

    assert api.get(f"/v1/orders/{SOURCE}/{ORDER}").status_code == 404


def test_a_late_order_update_after_customers_redact_does_not_recreate_the_customer(
    client: FlaskClient, api: Api, shop: str
) -> None:
    accepted(deliver_shopify(client, "orders/create", shopify_order()))
    redact = shopify_redact(SHOPIFY_CUSTOMER_ID, [SHOPIFY_ORDER_ID])
    accepted(deliver_shopify(client, "customers/redact", redact))

    late = accepted(deliver_shopify(client, "orders/updated", shopify_order()), "ignored")
    assert "erased" in late["detail"]

    assert api.get(f"/v1/customers/{SOURCE}/{CUSTOMER}").status_code == 404
    assert api.get(f"/v1/orders/{SOURCE}/{ORDER}").status_code == 404


# --- duplicates and ordering ---------------------------------------------------------------


def test_the_same_webhook_id_twice_is_stored_once_and_answered_as_a_duplicate(
    client: FlaskClient, db: Database, shop: str
) -> None:
    first = accepted(deliver_shopify(client, "orders/create", shopify_order(), webhook_id="wh-7"))
    again = accepted(
        deliver_shopify(client, "orders/create", shopify_order(), webhook_id="wh-7"), "duplicate"
    )

    assert again["delivery_id"] == first["delivery_id"]
    assert delivery_count(db) == 1


def test_a_replayed_sequence_with_duplicates_and_stale_updates_ends_in_the_latest_state(
    client: FlaskClient, api: Api, db: Database, shop: str
) -> None:
    created = shopify_order(financial_status="pending", updated_at="2024-03-01T10:00:00-05:00")
    paid = shopify_order(financial_status="paid", updated_at="2024-03-01T10:05:00-05:00")
    refund = shopify_refund(SHOPIFY_ORDER_ID, 890088186047892319, [("refund", "success", "50.00")])
    refunded = shopify_order(
        financial_status="partially_refunded",
        refunds=[refund],
        updated_at="2024-03-05T12:00:00-05:00",
    )
    customer_new = shopify_customer(updated_at="2024-03-06T09:00:00-05:00", country_code="US")
    customer_old = shopify_customer(updated_at="2024-03-01T09:00:00-05:00", country_code="CA")
    deliveries = [
        ("orders/create", created, "wh-1", "processed"),
        ("orders/paid", paid, "wh-2", "processed"),
        ("orders/paid", paid, "wh-2", "duplicate"),  # Shopify's retry: same webhook id
        ("orders/updated", refunded, "wh-3", "processed"),
        ("orders/updated", paid, "wh-4", "processed"),  # older updated_at: stale
        ("orders/create", created, "wh-1", "duplicate"),
        ("customers/update", customer_new, "wh-5", "processed"),
        ("customers/update", customer_old, "wh-6", "processed"),  # older: stale
    ]

    for topic, payload, webhook_id, outcome in deliveries:
        accepted(deliver_shopify(client, topic, payload, webhook_id=webhook_id), outcome)

    order = read_order(api)
    assert (order["status"], order["refunded"]) == ("completed", "50.00")
    assert order["updated_at"] == "2024-03-05T17:00:00Z"
    customer = read_customer(api)
    assert (customer["country"], customer["updated_at"]) == ("US", "2024-03-06T14:00:00Z")
    assert customer["acquisition_channel"] == "newsletter"
    assert delivery_count(db) == 6
