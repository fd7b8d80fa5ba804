"""WooCommerce deliveries → records. Bodies are REST API v3 resources (README table).

`map_woocommerce` is the platform mapper `service.webhooks.translation` hands a stored
WooCommerce delivery's payload to; it says what the payload asks as `RecordChanges`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from service.money import AmountError, to_decimal
from service.webhooks.attribution import channel_from, guest_customer_id
from service.webhooks.record_changes import MappingFailed, RecordChanges, ignore

STATUSES = {
    "processing": "completed",
    "completed": "completed",
    "on-hold": "pending",
    "pending": "pending",
    "failed": "cancelled",
    "cancelled": "cancelled",
    "refunded": "refunded",
    "trash": "cancelled",
}
ATTRIBUTION = "_wc_order_attribution_"


def map_woocommerce(topic: str, payload: Any, record_source: str) -> RecordChanges:
    if not isinstance(payload, dict):
        raise MappingFailed("the body is not a JSON object")
    if topic in ("order.created", "order.updated"):
        return _order(payload, record_source)
    if topic == "order.restored":
        restored = _order(payload, record_source)
        restored.restore_orders = [str(_required(payload, "id"))]
        return restored
    if topic == "order.deleted":
        return RecordChanges(erase_orders=[str(_required(payload, "id"))])
    if topic in ("customer.created", "customer.updated"):
        return RecordChanges(customers=[_customer(payload, record_source)])
    if topic == "customer.deleted":
        return RecordChanges(erase_customers=[str(_required(payload, "id"))])
    return ignore(f"topic {topic!r} carries nothing the metrics use")


def _order(payload: dict[str, Any], record_source: str) -> RecordChanges:
    status = _required(payload, "status")
    if status == "checkout-draft":
        return ignore("a checkout draft is not an order yet")
    if status not in STATUSES:
        raise MappingFailed(f"order status {status!r} is not one this service knows")
    order_id = str(_required(payload, "id"))
    billing = payload.get("billing") or {}
    customer_id = payload.get("customer_id") or 0
    order: dict[str, Any] = {
        "id": order_id,
        "source": record_source,
        "customer_id": str(customer_id)
        if customer_id
        else guest_customer_id(billing.get("email"), order_id),
        "placed_at": _gmt(_required(payload, "date_created_gmt")),
        "currency": _required(payload, "currency"),
        "total": _required(payload, "total"),
        "refunded": _refunded(payload),
        "status": STATUSES[status],
    }
    if payload.get("date_modified_gmt"):
        order["updated_at"] = _gmt(payload["date_modified_gmt"])
    customer: dict[str, Any] = {"id": order["customer_id"], "source": record_source}
    meta = {
        m.get("key"): m.get("value") for m in payload.get("meta_data") or [] if isinstance(m, dict)
    }
    utm_source = str(meta.get(ATTRIBUTION + "utm_source") or "").strip()
    if utm_source == "(direct)":  # WooCommerce's name for a typed-in visit
        utm_source = "direct"
    channel = utm_source or channel_from(
        None, meta.get(ATTRIBUTION + "referrer"), payload.get("created_via")
    )
    if channel:
        customer["acquisition_channel"] = channel
    if billing.get("country"):
        customer["country"] = billing["country"]
    return RecordChanges(orders=[order], first_seen_customers=[customer])


def _customer(payload: dict[str, Any], record_source: str) -> dict[str, Any]:
    record: dict[str, Any] = {"id": str(_required(payload, "id")), "source": record_source}
    if payload.get("date_created_gmt"):
        record["created_at"] = _gmt(payload["date_created_gmt"])
    if payload.get("date_modified_gmt"):
        record["updated_at"] = _gmt(payload["date_modified_gmt"])
    country = (payload.get("billing") or {}).get("country")
    if country:
        record["country"] = country
    return record


def _refunded(payload: dict[str, Any]) -> Decimal:
    """Refund totals are negative strings ("-10.00")."""
    total = Decimal(0)
    for refund in payload.get("refunds") or []:
        try:
            total -= to_decimal(refund.get("total"))
        except AmountError as error:
            raise MappingFailed(f"a refund's total: {error}") from None
    return total


def _gmt(value: Any) -> str:
    """WooCommerce's *_gmt times are UTC without an offset; say so explicitly."""
    text = str(value)
    return text if text.endswith("Z") or "+" in text[10:] else text + "Z"


def _required(payload: dict[str, Any], name: str) -> Any:
    value = payload.get(name)
    if value is None or value == "":
        raise MappingFailed(f"the payload has no {name!r}")
    return value
