"""Webhook bodies as the platforms send them, and the signatures they put on them.

The shapes follow the platforms' documented samples (Shopify webhook reference,
WooCommerce REST v3 resources and `WC_Webhook`, the Standard Webhooks spec): keys
the service does not read are kept, so a mapper that trips over a real payload
trips here too. Signatures are computed here with `hmac` directly, independently
of the service's own signing code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

SHOP = "aurora-goods.myshopify.com"
SHOPIFY_SECRET = "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"
SHOPIFY_API_VERSION = "2026-07"
WOO_SITE = "shop.example"
WOO_SECRET = "wc-s3cr3t-7d1e"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

# Shopify ids are above 2**53: they must survive as integers, never floats.
SHOPIFY_ORDER_ID = 820982911946154508
SHOPIFY_CUSTOMER_ID = 115310627314723954


def body_of(payload: Any) -> bytes:
    """The bytes a sender puts on the wire (and signs): compact JSON, as WooCommerce sends."""
    return json.dumps(payload, separators=(",", ":")).encode()


def guest_id(email: str) -> str:
    """The id the service gives a guest: a hash of the trimmed, lower-cased e-mail."""
    return "guest-" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:40]


# --- signatures ------------------------------------------------------------------------


def base64_hmac(secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(body)) keyed with the secret's bytes: Shopify's and WooCommerce's."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def standard_entry(secret: str, message_id: str, timestamp: int | str, body: bytes) -> str:
    """One Standard Webhooks `v1,<base64>` entry; the key is the base64-decoded secret."""
    encoded = secret.removeprefix("whsec_")
    key = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def shopify_headers(
    topic: str,
    body: bytes,
    webhook_id: str,
    secret: str = SHOPIFY_SECRET,
    shop: str = SHOP,
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": base64_hmac(secret, body),
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-API-Version": SHOPIFY_API_VERSION,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Triggered-At": "2024-03-01T10:00:05.000000Z",
        "X-Shopify-Event-Id": f"evt-{webhook_id}",
    }


def woo_headers(
    topic: str,
    body: bytes,
    secret: str = WOO_SECRET,
    site: str = WOO_SITE,
    webhook_id: int = 17,
) -> dict[str, str]:
    resource, event = topic.split(".")
    return {
        "Content-Type": "application/json",
        "User-Agent": "WooCommerce/8.9.1 Hookshot (WordPress/6.5.3)",
        "X-WC-Webhook-Source": f"https://{site}/",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": base64_hmac(secret, body),
        "X-WC-Webhook-ID": str(webhook_id),
        "X-WC-Webhook-Delivery-ID": hashlib.md5(body).hexdigest(),
    }


def standard_headers(
    body: bytes, message_id: str, timestamp: int, secret: str = STANDARD_SECRET
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_entry(secret, message_id, timestamp, body),
    }


# --- Shopify -------------------------------------------------------------------------------


def _shopify_money(amount: str, currency: str) -> dict[str, Any]:
    money = {"amount": amount, "currency_code": currency}
    return {"shop_money": money, "presentment_money": dict(money)}


def shopify_address(country_code: str = "CA") -> dict[str, Any]:
    return {
        "first_name": "Steve",
        "address1": "123 Shipping Street",
        "phone": "555-555-SHIP",
        "city": "Shippington",
        "zip": "40003",
        "province": "Kentucky",
        "country": "United States" if country_code == "US" else "Canada",
        "last_name": "Shipper",
        "address2": None,
        "company": "Shipping Company",
        "latitude": None,
        "longitude": None,
        "name": "Steve Shipper",
        "country_code": country_code,
        "province_code": "KY",
    }


def shopify_customer(
    customer_id: int = SHOPIFY_CUSTOMER_ID,
    *,
    email: str = "john@example.com",
    created_at: str | None = "2024-02-20T09:00:00-05:00",
    updated_at: str | None = "2024-02-20T09:00:00-05:00",
    country_code: str | None = "CA",
) -> dict[str, Any]:
    """A Customer resource: the customers/create|update body, and an order's `customer`."""
    address = None
    if country_code is not None:
        address = {
            "id": 715243470612851245,
            "customer_id": customer_id,
            "first_name": "John",
            "last_name": "Smith",
            "company": None,
            "address1": "151 O'Connor Street",
            "address2": None,
            "city": "Ottawa",
            "province": "Ontario",
            "country": "Canada",
            "zip": "K2H7A8",
            "phone": "555-555-5555",
            "name": "John Smith",
            "province_code": "ON",
            "country_code": country_code,
            "country_name": "Canada",
            "default": True,
        }
    return {
        "id": customer_id,
        "created_at": created_at,
        "updated_at": updated_at,
        "first_name": "John",
        "last_name": "Smith",
        "state": "enabled",
        "note": None,
        "verified_email": True,
        "multipass_identifier": None,
        "tax_exempt": False,
        "email": email,
        "phone": None,
        "currency": "USD",
        "addresses": [address] if address else [],
        "tax_exemptions": [],
        "admin_graphql_api_id": f"gid://shopify/Customer/{customer_id}",
        "default_address": address,
    }


def shopify_refund(
    order_id: int,
    refund_id: int,
    transactions: list[tuple[str, str, str]],
    *,
    with_amount_set: bool = False,
) -> dict[str, Any]:
    """A Refund (refunds/create body, or an entry of an order's refunds[]).

    `transactions` are (kind, status, amount); the sample's `currency` is null.
    """
    made = []
    for n, (kind, status, amount) in enumerate(transactions):
        transaction: dict[str, Any] = {
            "id": refund_id * 10 + n,
            "order_id": order_id,
            "kind": kind,
            "gateway": "bogus",
            "status": status,
            "message": "This is a refund",
            "created_at": "2024-03-05T12:00:00-05:00",
            "test": False,
            "authorization": None,
            "location_id": None,
            "user_id": None,
            "parent_id": None,
            "processed_at": None,
            "device_id": None,
            "error_code": None,
            "source_name": "web",
            "receipt": {},
            "amount": amount,
            "currency": None,
            "payment_id": f"#9999.{n}",
            "total_unsettled_set": _shopify_money("0.00", "USD"),
            "manual_payment_gateway": True,
            "admin_graphql_api_id": f"gid://shopify/OrderTransaction/{refund_id * 10 + n}",
        }
        if with_amount_set:
            transaction["amount_set"] = _shopify_money(amount, "USD")
        made.append(transaction)
    return {
        "id": refund_id,
        "order_id": order_id,
        "created_at": "2024-03-05T12:00:00-05:00",
        "note": "Things were damaged",
        "user_id": 548380009,
        "processed_at": "2024-03-05T12:00:00-05:00",
        "duties": [],
        "total_duties_set": _shopify_money("0.00", "USD"),
        "return": None,
        "refund_shipping_lines": [],
        "restock": False,
        "admin_graphql_api_id": f"gid://shopify/Refund/{refund_id}",
        "order_adjustments": [],
        "refund_line_items": [
            {
                "id": 487817672276298627,
                "quantity": 1,
                "line_item_id": 487817672276298554,
                "location_id": None,
                "restock_type": "no_restock",
                "subtotal": 89.99,
                "total_tax": 0.0,
                "subtotal_set": _shopify_money("89.99", "USD"),
                "total_tax_set": _shopify_money("0.00", "USD"),
                "line_item": {
                    "id": 487817672276298554,
                    "title": "Aviator sunglasses",
                    "price": "89.99",
                },
            }
        ],
        "transactions": made,
    }


def shopify_order(
    order_id: int = SHOPIFY_ORDER_ID,
    *,
    customer: dict[str, Any] | None = None,
    guest: bool = False,
    email: str = "john@example.com",
    financial_status: str | None = "paid",
    created_at: str = "2024-03-01T09:58:00-05:00",
    processed_at: str | None = "2024-03-01T10:00:00-05:00",
    updated_at: str | None = "2024-03-01T10:00:00-05:00",
    cancelled_at: str | None = None,
    total: str = "404.95",
    currency: str = "USD",
    refunds: list[dict[str, Any]] | None = None,
    landing_site: str | None = "/products/aviator?utm_source=Newsletter&utm_medium=email",
    referring_site: str | None = None,
    source_name: str = "web",
    test: bool = False,
) -> dict[str, Any]:
    """An Order resource: the body of orders/create|updated|paid|cancelled|fulfilled."""
    if customer is None and not guest:
        customer = shopify_customer(email=email)
    return {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "app_id": None,
        "browser_ip": "203.0.113.7",
        "buyer_accepts_marketing": True,
        "cancel_reason": "customer" if cancelled_at else None,
        "cancelled_at": cancelled_at,
        "cart_token": None,
        "checkout_id": 901414060,
        "checkout_token": "bd5a8aa1ecd019dd3520ff791ee3a24c",
        "client_details": None,
        "closed_at": None,
        "confirmation_number": "X7Y8Z9A0B",
        "confirmed": True,
        "contact_email": email,
        "created_at": created_at,
        "currency": currency,
        "current_subtotal_price": total,
        "current_subtotal_price_set": _shopify_money(total, currency),
        "current_total_discounts": "0.00",
        "current_total_price": total,
        "current_total_price_set": _shopify_money(total, currency),
        "current_total_tax": "0.00",
        "customer_locale": "en",
        "discount_codes": [],
        "email": email,
        "estimated_taxes": False,
        "financial_status": financial_status,
        "fulfillment_status": None,
        "landing_site": landing_site,
        "landing_site_ref": None,
        "location_id": None,
        "name": f"#{order_id % 10000}",
        "note": None,
        "note_attributes": [],
        "number": 234,
        "order_number": 1234,
        "order_status_url": f"https://{SHOP}/orders/123456abcd/authenticate?key=abcdefg",
        "payment_gateway_names": ["visa", "bogus"],
        "phone": None,
        "po_number": None,
        "presentment_currency": currency,
        "processed_at": processed_at,
        "reference": None,
        "referring_site": referring_site,
        "source_identifier": None,
        "source_name": source_name,
        "source_url": None,
        "subtotal_price": total,
        "subtotal_price_set": _shopify_money(total, currency),
        "tags": "tag1, tag2",
        "taxes_included": False,
        "test": test,
        "token": "123456abcd",
        "total_discounts": "0.00",
        "total_discounts_set": _shopify_money("0.00", currency),
        "total_line_items_price": total,
        "total_line_items_price_set": _shopify_money(total, currency),
        "total_outstanding": "0.00",
        "total_price": total,
        "total_price_set": _shopify_money(total, currency),
        "total_shipping_price_set": _shopify_money("0.00", currency),
        "total_tax": "0.00",
        "total_tax_set": _shopify_money("0.00", currency),
        "total_tip_received": "0.00",
        "total_weight": 0,
        "updated_at": updated_at,
        "user_id": None,
        "billing_address": shopify_address("US"),
        "customer": customer,
        "discount_applications": [],
        "fulfillments": [],
        "line_items": [
            {
                "id": 487817672276298554,
                "admin_graphql_api_id": "gid://shopify/LineItem/487817672276298554",
                "fulfillable_quantity": 1,
                "fulfillment_service": "manual",
                "fulfillment_status": None,
                "gift_card": False,
                "grams": 100,
                "name": "Aviator sunglasses",
                "price": total,
                "price_set": _shopify_money(total, currency),
                "product_exists": True,
                "product_id": 788032119674292922,
                "properties": [],
                "quantity": 1,
                "requires_shipping": True,
                "sku": "SKU2006-001",
                "taxable": True,
                "title": "Aviator sunglasses",
                "total_discount": "0.00",
                "total_discount_set": _shopify_money("0.00", currency),
                "variant_id": None,
                "variant_inventory_management": None,
                "variant_title": None,
                "vendor": None,
                "tax_lines": [],
                "duties": [],
                "discount_allocations": [],
            }
        ],
        "payment_terms": None,
        "refunds": refunds or [],
        "shipping_address": shopify_address("US"),
        "shipping_lines": [],
        "returns": [],
        "line_item_groups": [],
    }


def shopify_redact(
    customer_id: int, orders_to_redact: list[int], shop: str = SHOP
) -> dict[str, Any]:
    """customers/redact, a mandatory compliance topic."""
    return {
        "shop_id": 954889,
        "shop_domain": shop,
        "customer": {"id": customer_id, "email": "john@example.com", "phone": "555-625-1199"},
        "orders_to_redact": orders_to_redact,
    }


def shopify_order_deleted(order_id: int) -> dict[str, Any]:
    """orders/delete sends the id and nothing else."""
    return {"id": order_id}


# --- WooCommerce ---------------------------------------------------------------------------


def woo_billing(email: str = "john.doe@example.com", country: str = "US") -> dict[str, Any]:
    return {
        "first_name": "John",
        "last_name": "Doe",
        "company": "",
        "address_1": "969 Market",
        "address_2": "",
        "city": "San Francisco",
        "state": "CA",
        "postcode": "94103",
        "country": country,
        "email": email,
        "phone": "(555) 555-5555",
    }


def _woo_links(resource: str, resource_id: int) -> dict[str, Any]:
    base = f"https://{WOO_SITE}/wp-json/wc/v3/{resource}"
    return {
        "self": [{"href": f"{base}/{resource_id}"}],
        "collection": [{"href": base}],
    }


def woo_attribution(
    utm_source: str | None = None, referrer: str | None = None, source_type: str = "utm"
) -> list[dict[str, Any]]:
    """Order attribution meta (WooCommerce 8.5+); every value is a string."""
    prefix = "_wc_order_attribution_"
    values = {
        "source_type": source_type,
        "referrer": referrer,
        "utm_source": utm_source,
        "utm_medium": "cpc" if utm_source else None,
        "session_entry": f"https://{WOO_SITE}/shop/",
        "session_start_time": "2024-03-01 09:55:12",
        "session_pages": "4",
        "session_count": "1",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
        "device_type": "Desktop",
    }
    return [
        {"id": 13100 + n, "key": prefix + key, "value": value}
        for n, (key, value) in enumerate(values.items())
        if value is not None
    ]


def woo_order(
    order_id: int = 727,
    *,
    status: str = "processing",
    customer_id: int = 25,
    email: str = "john.doe@example.com",
    country: str = "US",
    currency: str = "USD",
    total: str = "29.35",
    date_created: str = "2024-03-01T21:28:02",
    date_created_gmt: str = "2024-03-02T02:28:02",
    date_modified_gmt: str | None = "2024-03-02T02:30:35",
    refunds: list[str] | None = None,
    meta_data: list[dict[str, Any]] | None = None,
    created_via: str = "checkout",
) -> dict[str, Any]:
    """An order as the REST API v3 returns it: the body of order.created|updated|restored.

    Dates have no offset: `*_gmt` is UTC, the others are the site's local time.
    `refunds` are amounts, sent as WooCommerce does: negative strings.
    """
    return {
        "id": order_id,
        "parent_id": 0,
        "status": status,
        "currency": currency,
        "version": "8.9.1",
        "prices_include_tax": False,
        "date_created": date_created,
        "date_modified": "2024-03-01T21:30:35",
        "discount_total": "0.00",
        "discount_tax": "0.00",
        "shipping_total": "10.00",
        "shipping_tax": "0.00",
        "cart_tax": "1.35",
        "total": total,
        "total_tax": "1.35",
        "customer_id": customer_id,
        "order_key": f"wc_order_{order_id}58d2d042d1d",
        "billing": woo_billing(email, country),
        "shipping": {k: v for k, v in woo_billing(email, country).items() if k not in {"email"}},
        "payment_method": "bacs",
        "payment_method_title": "Direct Bank Transfer",
        "transaction_id": "",
        "customer_ip_address": "203.0.113.9",
        "customer_user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
        "created_via": created_via,
        "customer_note": "",
        "date_completed": None,
        "date_paid": "2024-03-01T21:28:08",
        "cart_hash": "",
        "number": str(order_id),
        "meta_data": meta_data if meta_data is not None else woo_attribution("google"),
        "line_items": [
            {
                "id": 315,
                "name": "Woo Single #1",
                "product_id": 93,
                "variation_id": 0,
                "quantity": 2,
                "tax_class": "",
                "subtotal": "6.00",
                "subtotal_tax": "0.45",
                "total": "6.00",
                "total_tax": "0.45",
                "taxes": [{"id": 75, "total": "0.45", "subtotal": "0.45"}],
                "meta_data": [],
                "sku": "",
                "price": 3,
            }
        ],
        "tax_lines": [],
        "shipping_lines": [
            {
                "id": 317,
                "method_title": "Flat Rate",
                "method_id": "flat_rate",
                "total": "10.00",
                "total_tax": "0.00",
                "taxes": [],
                "meta_data": [],
            }
        ],
        "fee_lines": [],
        "coupon_lines": [],
        "refunds": [
            {"id": 800 + n, "reason": "", "total": f"-{amount}"}
            for n, amount in enumerate(refunds or [])
        ],
        "payment_url": f"https://{WOO_SITE}/checkout/order-pay/{order_id}/",
        "is_editable": False,
        "needs_payment": False,
        "needs_processing": True,
        "date_created_gmt": date_created_gmt,
        "date_modified_gmt": date_modified_gmt,
        "date_completed_gmt": None,
        "date_paid_gmt": "2024-03-02T02:28:08",
        "currency_symbol": "$",
        "_links": _woo_links("orders", order_id),
    }


def woo_customer(
    customer_id: int = 25,
    *,
    email: str = "john.doe@example.com",
    country: str = "US",
    date_created_gmt: str = "2024-02-21T19:09:28",
    date_modified_gmt: str = "2024-02-21T19:09:30",
) -> dict[str, Any]:
    """A customer as the REST API v3 returns it: the body of customer.created|updated."""
    return {
        "id": customer_id,
        "date_created": "2024-02-21T16:09:28",
        "date_created_gmt": date_created_gmt,
        "date_modified": "2024-02-21T16:09:30",
        "date_modified_gmt": date_modified_gmt,
        "email": email,
        "first_name": "John",
        "last_name": "Doe",
        "role": "customer",
        "username": "john.doe",
        "billing": woo_billing(email, country),
        "shipping": {k: v for k, v in woo_billing(email, country).items() if k != "email"},
        "is_paying_customer": False,
        "avatar_url": "https://secure.gravatar.com/avatar/8eb1b522f60d11fa897de1dc6351b7e8?s=96",
        "meta_data": [],
        "_links": _woo_links("customers", customer_id),
    }


def woo_deleted(resource_id: int) -> dict[str, Any]:
    """order.deleted (a trashed order) and customer.deleted send the id and nothing else."""
    return {"id": resource_id}


# --- Standard Webhooks ---------------------------------------------------------------------


def standard_envelope(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """The service's envelope: {"type": "<record>.upserted", "timestamp", "data": <record>}."""
    return {"type": f"{kind}.upserted", "timestamp": "2024-03-01T10:00:05Z", "data": data}
