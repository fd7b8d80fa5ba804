"""WooCommerce deliveries: signed like `WC_Webhook` signs them, read back through the REST API."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from service.db import Database
from service.webhooks.signatures import body_signature
from tests.conftest import Api, one_backend
from tests.webhook_payloads import (
    WOO_SECRET,
    WOO_SITE,
    base64_hmac,
    body_of,
    guest_id,
    woo_attribution,
    woo_customer,
    woo_deleted,
    woo_headers,
    woo_order,
)
from tests.webhook_support import (
    accepted,
    add_sender,
    assert_refused,
    deliver_woo,
    delivery_count,
    record_tables_text,
    stored_deliveries,
)

SOURCE = f"woocommerce:{WOO_SITE}"


@pytest.fixture
def site(db: Database) -> str:
    add_sender(db, "woocommerce", WOO_SITE, WOO_SECRET)
    return WOO_SITE


def read_order(api: Api, order_id: str = "727") -> dict[str, Any]:
    response = api.get(f"/v1/orders/{SOURCE}/{order_id}")
    assert response.status_code == 200, response.json
    found: dict[str, Any] = response.json
    found.pop("ingested_at")
    return found


def read_customer(api: Api, customer_id: str = "25") -> dict[str, Any]:
    response = api.get(f"/v1/customers/{SOURCE}/{customer_id}")
    assert response.status_code == 200, response.json
    found: dict[str, Any] = response.json
    found.pop("ingested_at")
    return found


# --- signatures and the ping ---------------------------------------------------------------


def test_the_signing_helper_and_the_service_both_reproduce_the_computed_vector() -> None:
    assert base64_hmac("s3cr3t", b'{"id":727}') == "qY2Gl36+X5UqWQ/k7Z17aTwyK2OVpPPjsi+X9k+wXe0="
    assert body_signature("s3cr3t", b'{"id":727}') == "qY2Gl36+X5UqWQ/k7Z17aTwyK2OVpPPjsi+X9k+wXe0="


def test_the_ping_sent_on_webhook_creation_gets_a_200_and_stores_nothing(
    client: FlaskClient, db: Database, site: str
) -> None:
    # deliver_ping(): the literal body webhook_id=<N>, form-encoded, no X-WC-* headers.
    response = client.post(
        "/v1/webhooks/woocommerce",
        data=b"webhook_id=17",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "WooCommerce/8.9.1 Hookshot (WordPress/6.5.3)",
        },
    )

    assert response.status_code == 200  # WooCommerce accepts exactly 200, nothing else
    assert response.json == {"delivery_id": None, "status": "ping"}
    assert delivery_count(db) == 0


def test_an_unsigned_order_is_not_taken_for_a_ping(
    client: FlaskClient, db: Database, site: str
) -> None:
    body = body_of(woo_order())
    headers = woo_headers("order.created", body)
    del headers["X-WC-Webhook-Signature"]

    assert_refused(client.post("/v1/webhooks/woocommerce", data=body, headers=headers))
    assert delivery_count(db) == 0


@one_backend
def test_a_forged_signature_is_refused_and_nothing_is_stored(
    client: FlaskClient, db: Database, site: str
) -> None:
    assert_refused(deliver_woo(client, "order.created", woo_order(), secret="guessed"))
    assert delivery_count(db) == 0


def test_an_unknown_site_is_refused_even_with_a_valid_signature_and_nothing_is_stored(
    client: FlaskClient, db: Database, site: str
) -> None:
    problem = assert_refused(deliver_woo(client, "order.created", woo_order(), site="evil.example"))

    assert "evil.example" in problem["detail"]
    assert delivery_count(db) == 0


def test_a_secret_with_html_entities_is_decoded_before_signing_as_woocommerce_does(
    client: FlaskClient, api: Api, db: Database
) -> None:
    # WooCommerce signs with wp_specialchars_decode($secret): "a&amp;b" signs as "a&b".
    add_sender(db, "woocommerce", WOO_SITE, "p&amp;ss&quot;word")

    accepted(deliver_woo(client, "order.created", woo_order(), secret='p&ss"word'))

    assert read_order(api)["total"] == "29.35"


def test_the_site_is_the_host_of_the_source_url_whatever_its_case_and_path(
    client: FlaskClient, api: Api, site: str
) -> None:
    body = body_of(woo_order())
    headers = woo_headers("order.created", body)
    headers["X-WC-Webhook-Source"] = "https://Shop.Example/"

    accepted(client.post("/v1/webhooks/woocommerce", data=body, headers=headers))

    assert read_order(api)["id"] == "727"


# --- orders --------------------------------------------------------------------------------


def test_an_order_is_stored_with_every_field_mapped(
    client: FlaskClient, api: Api, db: Database, site: str
) -> None:
    accepted(deliver_woo(client, "order.created", woo_order()))

    assert read_order(api) == {
        "id": "727",
        "source": SOURCE,
        "customer_id": "25",
        # date_created_gmt is UTC without an offset; date_created (site-local) is a day earlier.
        "placed_at": "2024-03-02T02:28:02Z",
        "currency": "USD",
        "total": "29.35",
        "refunded": "0.00",
        "status": "completed",  # processing: paid, awaiting fulfilment
        "test": False,
        "updated_at": "2024-03-02T02:30:35Z",  # date_modified_gmt
    }
    assert read_customer(api) == {
        "id": "25",
        "source": SOURCE,
        "created_at": None,
        "acquisition_channel": "google",  # _wc_order_attribution_utm_source
        "country": "US",
        "attributes": {},
        "updated_at": None,
        "stub": False,
    }
    assert stored_deliveries(db) == [("order.created", "processed", None, 1)]


@pytest.mark.parametrize(
    ("woo_status", "status"),
    [
        ("processing", "completed"),
        ("completed", "completed"),
        ("on-hold", "pending"),
        ("pending", "pending"),
        ("failed", "cancelled"),
        ("cancelled", "cancelled"),
        ("refunded", "refunded"),
    ],
)
def test_the_order_status_is_mapped(
    client: FlaskClient, api: Api, site: str, woo_status: str, status: str
) -> None:
    accepted(deliver_woo(client, "order.updated", woo_order(status=woo_status)))

    assert read_order(api)["status"] == status


def test_a_checkout_draft_is_ignored_and_stores_no_order(
    client: FlaskClient, api: Api, db: Database, site: str
) -> None:
    answer = accepted(
        deliver_woo(client, "order.created", woo_order(status="checkout-draft")), "ignored"
    )

    assert "draft" in answer["detail"]
    assert api.get(f"/v1/orders/{SOURCE}/727").status_code == 404
    assert stored_deliveries(db)[0][1] == "ignored"


def test_refunds_arrive_as_an_order_update_with_negative_totals_and_reduce_net_revenue(
    client: FlaskClient, api: Api, site: str
) -> None:
    accepted(deliver_woo(client, "order.created", woo_order(total="129.35")))
    refunded = woo_order(
        total="129.35", refunds=["10.00", "15.50"], date_modified_gmt="2024-03-04T10:00:00"
    )

    accepted(deliver_woo(client, "order.updated", refunded))

    found = read_order(api)
    assert (found["total"], found["refunded"], found["status"]) == ("129.35", "25.50", "completed")


def test_an_order_in_another_currency_is_stored_as_failed_with_a_clear_reason(
    client: FlaskClient, api: Api, db: Database, site: str
) -> None:
    answer = accepted(deliver_woo(client, "order.created", woo_order(currency="GBP")), "failed")

    assert "GBP" in answer["detail"] and "USD" in answer["detail"]
    assert api.get(f"/v1/orders/{SOURCE}/727").status_code == 404
    assert stored_deliveries(db)[0][1:3] == ("failed", answer["detail"])


def test_a_guest_order_gets_a_hashed_customer_id_and_the_email_is_not_kept_in_records(
    client: FlaskClient, api: Api, db: Database, site: str
) -> None:
    order = woo_order(customer_id=0, email="Guest.Buyer@Mail.Example ")

    answer = accepted(deliver_woo(client, "order.created", order))

    customer_id = read_order(api)["customer_id"]
    assert customer_id == guest_id("guest.buyer@mail.example")
    assert read_customer(api, customer_id)["country"] == "US"
    answered = "".join(
        [
            str(answer),
            api.get("/v1/orders").get_data(as_text=True),
            api.get("/v1/customers").get_data(as_text=True),
        ]
    )
    for needle in ("guest.buyer", "Guest.Buyer", "mail.example"):
        assert needle not in record_tables_text(db)
        assert needle not in answered
    # The raw body stays in webhook_deliveries: that is the audit copy, by design.


# --- acquisition channel -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meta_data", "created_via", "channel"),
    [
        (woo_attribution("Facebook", "https://l.facebook.com/"), "checkout", "facebook"),
        (
            woo_attribution(None, "https://duckduckgo.com/", "referral"),
            "checkout",
            "duckduckgo.com",
        ),
        (woo_attribution(None, None, "admin"), "admin", "admin"),
        ([], "rest-api", "rest-api"),
        (woo_attribution("(direct)", None, "typein"), "checkout", "direct"),
        # The meta value is used as it is, not parsed as a query string.
        (woo_attribution("news&letter"), "checkout", "news&letter"),
    ],
)
def test_the_channel_is_utm_source_else_referrer_host_else_created_via(
    client: FlaskClient,
    api: Api,
    site: str,
    meta_data: list[dict[str, Any]],
    created_via: str,
    channel: str,
) -> None:
    accepted(
        deliver_woo(
            client, "order.created", woo_order(meta_data=meta_data, created_via=created_via)
        )
    )

    assert read_customer(api)["acquisition_channel"] == channel


def test_the_first_order_fixes_the_channel_and_later_deliveries_keep_it(
    client: FlaskClient, api: Api, site: str
) -> None:
    accepted(
        deliver_woo(client, "order.created", woo_order(727, meta_data=woo_attribution("bing")))
    )
    second = woo_order(
        800,
        meta_data=woo_attribution("google"),
        date_created_gmt="2024-04-01T10:00:00",
        date_modified_gmt="2024-04-01T10:00:00",
    )
    accepted(deliver_woo(client, "order.created", second))
    accepted(
        deliver_woo(
            client,
            "customer.updated",
            woo_customer(country="DE", date_modified_gmt="2024-04-02T10:00:00"),
        )
    )

    customer = read_customer(api)
    assert customer["acquisition_channel"] == "bing"
    assert (customer["country"], customer["updated_at"]) == ("DE", "2024-04-02T10:00:00Z")


def test_a_customer_registered_before_its_first_order_gets_the_channel_of_that_order(
    client: FlaskClient, api: Api, site: str
) -> None:
    accepted(deliver_woo(client, "customer.created", woo_customer()))
    accepted(deliver_woo(client, "order.created", woo_order()))

    assert read_customer(api)["acquisition_channel"] == "google"


# --- customers -----------------------------------------------------------------------------


def test_customer_created_stores_the_customer_without_personal_data(
    client: FlaskClient, api: Api, db: Database, site: str
) -> None:
    accepted(deliver_woo(client, "customer.created", woo_customer(email="jane@shop.test")))

    assert read_customer(api) == {
        "id": "25",
        "source": SOURCE,
        "created_at": "2024-02-21T19:09:28Z",
        "acquisition_channel": "unknown",
        "country": "US",
        "attributes": {},
        "updated_at": "2024-02-21T19:09:30Z",
        "stub": False,
    }
    assert "jane@shop.test" not in record_tables_text(db)


# --- deletion ------------------------------------------------------------------------------


def test_order_deleted_erases_the_order_and_order_restored_brings_it_back(
    client: FlaskClient, api: Api, site: str
) -> None:
    accepted(deliver_woo(client, "order.created", woo_order()))

    accepted(deliver_woo(client, "order.deleted", woo_deleted(727)))
    assert api.get(f"/v1/orders/{SOURCE}/727").status_code == 404

    restored = woo_order(date_modified_gmt="2024-03-03T09:00:00")
    accepted(deliver_woo(client, "order.restored", restored))
    assert read_order(api)["updated_at"] == "2024-03-03T09:00:00Z"


def test_customer_deleted_erases_the_customer_and_their_orders(
    client: FlaskClient, api: Api, site: str
) -> None:
    accepted(deliver_woo(client, "order.created", woo_order(727)))
    accepted(deliver_woo(client, "order.created", woo_order(728)))
    accepted(deliver_woo(client, "order.created", woo_order(729, customer_id=26)))

    accepted(deliver_woo(client, "customer.deleted", woo_deleted(25)))

    assert api.get(f"/v1/customers/{SOURCE}/25").status_code == 404
    assert api.get(f"/v1/orders/{SOURCE}/727").status_code == 404
    assert api.get(f"/v1/orders/{SOURCE}/728").status_code == 404
    assert read_order(api, "729")["customer_id"] == "26"


def test_deleting_an_order_never_seen_is_processed_and_changes_nothing(
    client: FlaskClient, db: Database, site: str
) -> None:
    accepted(deliver_woo(client, "order.deleted", woo_deleted(99999)))

    assert stored_deliveries(db)[0][:2] == ("order.deleted", "processed")


# --- duplicates and ordering ---------------------------------------------------------------


def test_the_same_delivery_twice_is_stored_once_and_answered_as_a_duplicate(
    client: FlaskClient, db: Database, site: str
) -> None:
    first = accepted(deliver_woo(client, "order.created", woo_order()))
    again = accepted(deliver_woo(client, "order.created", woo_order()), "duplicate")

    assert again["delivery_id"] == first["delivery_id"]
    assert delivery_count(db) == 1


def test_a_replayed_sequence_with_duplicates_and_stale_updates_ends_in_the_latest_state(
    client: FlaskClient, api: Api, db: Database, site: str
) -> None:
    pending = woo_order(status="pending", date_modified_gmt="2024-03-02T02:28:02")
    processing = woo_order(status="processing", date_modified_gmt="2024-03-02T02:29:00")
    completed = woo_order(status="completed", date_modified_gmt="2024-03-03T08:00:00")
    refunded = woo_order(
        status="completed", refunds=["9.35"], date_modified_gmt="2024-03-05T12:00:00"
    )
    customer_new = woo_customer(country="FR", date_modified_gmt="2024-03-06T09:00:00")
    customer_old = woo_customer(country="US", date_modified_gmt="2024-03-01T09:00:00")
    deliveries = [
        ("order.created", pending, "processed"),
        ("order.updated", processing, "processed"),
        ("order.updated", processing, "duplicate"),
        ("order.updated", refunded, "processed"),
        ("order.updated", completed, "processed"),  # older date_modified_gmt: stale
        ("order.updated", processing, "duplicate"),
        ("customer.updated", customer_new, "processed"),
        ("customer.updated", customer_old, "processed"),  # older: stale
    ]

    for topic, payload, outcome in deliveries:
        accepted(deliver_woo(client, topic, payload), outcome)

    order = read_order(api)
    assert (order["status"], order["refunded"]) == ("completed", "9.35")
    assert order["updated_at"] == "2024-03-05T12:00:00Z"
    customer = read_customer(api)
    assert (customer["country"], customer["updated_at"]) == ("FR", "2024-03-06T09:00:00Z")
    assert customer["acquisition_channel"] == "google"
    assert delivery_count(db) == 6
