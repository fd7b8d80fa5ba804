"""Shopify deliveries → records. Field meanings: shopify.dev webhook reference (README table).

`map_shopify` is the platform mapper `service.webhooks.translation` hands a stored
Shopify delivery's payload to; it says what the payload asks as `RecordChanges`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from service.money import AmountError, to_decimal
from service.webhooks.attribution import channel_from, guest_customer_id
from service.webhooks.record_changes import MappingFailed, RecordChanges, ignore

ORDER_TOPICS = frozenset(
    {
        "orders/create",
        "orders/updated",
        "orders/paid",
        "orders/cancelled",
        "orders/fulfilled",
        "orders/partially_fulfilled",
    }
)
COMPLETED = frozenset({"paid", "partially_paid", "partially_refunded"})
PENDING = frozenset({"pending", "authorized"})
CANCELLED = frozenset({"voided", "expired"})


def map_shopify(topic: str, payload: Any, record_source: str) -> RecordChanges:
    if not isinstance(payload, dict):
        raise MappingFailed("the body is not a JSON object")
    if topic in ORDER_TOPICS:
        return _order(payload, record_source)
    if topic in ("customers/create", "customers/update"):
        return RecordChanges(customers=[_customer(payload, record_source)])
    if topic == "customers/redact":
        customer = payload.get("customer") or {}
        erase = RecordChanges(erase_orders=[str(i) for i in payload.get("orders_to_redact") or []])
        if customer.get("id") is not None:
            erase.erase_customers.append(str(customer["id"]))
        return erase
    if topic == "orders/delete":
        return RecordChanges(erase_orders=[str(_required(payload, "id"))])
    if topic == "refunds/create":
        return ignore(
            "refunds reach the order through the orders/updated delivery Shopify sends with "
            "them (its refunds[] lists every refund); applying one alone could count it twice"
        )
    return ignore(f"topic {topic!r} carries nothing the metrics use")


def _order(payload: dict[str, Any], record_source: str) -> RecordChanges:
    order_id = str(_required(payload, "id"))
    shop_money = (payload.get("total_price_set") or {}).get("shop_money") or {}
    order: dict[str, Any] = {
        "id": order_id,
        "source": record_source,
        "placed_at": payload.get("processed_at") or _required(payload, "created_at"),
        "currency": shop_money.get("currency_code") or _required(payload, "currency"),
        "total": shop_money.get("amount") or _required(payload, "total_price"),
        "refunded": _refunded(payload),
        "status": _status(payload),
        "test": bool(payload.get("test", False)),
    }
    if payload.get("updated_at"):
        order["updated_at"] = payload["updated_at"]
    customer = payload.get("customer") or {}
    changes = RecordChanges(orders=[order])
    if customer.get("id") is not None:
        order["customer_id"] = str(customer["id"])
        first_seen = _customer(customer, record_source, payload)
        first_seen.pop("updated_at", None)
        changes.first_seen_customers.append(first_seen)
    else:
        email = payload.get("email") or payload.get("contact_email")
        order["customer_id"] = guest_customer_id(email, order_id)
        guest: dict[str, Any] = {"id": order["customer_id"], "source": record_source}
        guest |= _channel_and_country(payload, payload.get("billing_address"))
        changes.first_seen_customers.append(guest)
    return changes


def _customer(
    customer: dict[str, Any], record_source: str, order: dict[str, Any] | None = None
) -> dict[str, Any]:
    record: dict[str, Any] = {"id": str(_required(customer, "id")), "source": record_source}
    if customer.get("created_at"):
        record["created_at"] = customer["created_at"]
    if customer.get("updated_at"):
        record["updated_at"] = customer["updated_at"]
    address = customer.get("default_address") or (order or {}).get("billing_address")
    if order is not None:
        record |= _channel_and_country(order, address)
    elif (address or {}).get("country_code"):
        record["country"] = address["country_code"]  # type: ignore[index]
    return record


def _channel_and_country(order: dict[str, Any], address: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    channel = channel_from(
        order.get("landing_site"), order.get("referring_site"), order.get("source_name")
    )
    if channel:
        found["acquisition_channel"] = channel
    if isinstance(address, dict) and address.get("country_code"):
        found["country"] = address["country_code"]
    return found


def _status(payload: dict[str, Any]) -> str:
    financial = payload.get("financial_status")
    if payload.get("cancelled_at") or financial in CANCELLED:
        return "cancelled"
    if financial in COMPLETED:
        return "completed"
    if financial in PENDING or financial is None:
        return "pending"
    if financial == "refunded":
        return "refunded"
    raise MappingFailed(f"financial_status {financial!r} is not one this service knows")


def _refunded(payload: dict[str, Any]) -> Decimal:
    """Successful refund transactions of every refund, in shop money when given."""
    total = Decimal(0)
    for refund in payload.get("refunds") or []:
        for transaction in refund.get("transactions") or []:
            if transaction.get("kind") != "refund" or transaction.get("status") != "success":
                continue
            shop = ((transaction.get("amount_set") or {}).get("shop_money") or {}).get("amount")
            try:
                total += to_decimal(shop or transaction.get("amount"))
            except AmountError as error:
                raise MappingFailed(f"a refund transaction's amount: {error}") from None
    return total


def _required(payload: dict[str, Any], name: str) -> Any:
    value = payload.get(name)
    if value is None or value == "":
        raise MappingFailed(f"the payload has no {name!r}")
    return value
