"""Reading back what was stored, in the API's field names: one record, or a page of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from service.models import AcquisitionSpend, Customer, Order
from service.money import currency_exponent, format_amount


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _amount(minor: int, currency: str) -> str:
    return format_amount(minor, currency_exponent(currency) or 0)


def customer_view(row: Customer) -> dict[str, Any]:
    return {
        "id": row.external_id,
        "source": row.source,
        "created_at": _instant(row.created_at),
        "acquisition_channel": row.acquisition_channel,
        "country": row.country,
        "attributes": row.attributes,
        "updated_at": _instant(row.updated_at),
        "stub": row.stub,
        "ingested_at": _instant(row.ingested_at),
    }


def order_view(row: Order, customer_id: str) -> dict[str, Any]:
    return {
        "id": row.external_id,
        "source": row.source,
        "customer_id": customer_id,
        "placed_at": _instant(row.placed_at),
        "currency": row.currency,
        "total": _amount(row.total_minor, row.currency),
        "refunded": _amount(row.refunded_minor, row.currency),
        "status": row.status,
        "test": row.test,
        "updated_at": _instant(row.updated_at),
        "ingested_at": _instant(row.ingested_at),
    }


def spend_view(row: AcquisitionSpend) -> dict[str, Any]:
    return {
        "id": row.external_id,
        "channel": row.channel,
        "amount": _amount(row.amount_minor, row.currency),
        "currency": row.currency,
        "start_date": row.start_date,
        "end_date": row.end_date,
        "ingested_at": _instant(row.ingested_at),
    }


def _orders_with_customer_ids() -> Select:  # type: ignore[type-arg]
    return select(Order, Customer.external_id).join(Customer, Customer.pk == Order.customer_pk)


def get_customer(session: Session, source: str, customer_id: str) -> dict[str, Any] | None:
    row = session.scalar(
        select(Customer).where(Customer.source == source, Customer.external_id == customer_id)
    )
    return None if row is None else customer_view(row)


def get_order(session: Session, source: str, order_id: str) -> dict[str, Any] | None:
    found = session.execute(
        _orders_with_customer_ids().where(Order.source == source, Order.external_id == order_id)
    ).first()
    if found is None:
        return None
    order, customer_id = found
    return order_view(order, customer_id)


def list_customers(
    session: Session, after: int, limit: int, source: str | None
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of customers in storage order; the second value is the next page's start."""
    query = select(Customer).where(Customer.pk > after).order_by(Customer.pk).limit(limit + 1)
    if source is not None:
        query = query.where(Customer.source == source)
    rows = list(session.scalars(query))
    return [customer_view(r) for r in rows[:limit]], _next_after(rows, limit)


def list_orders(
    session: Session, after: int, limit: int, source: str | None, customer_id: str | None
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of orders, optionally of one source or one customer."""
    query = _orders_with_customer_ids().where(Order.pk > after).order_by(Order.pk).limit(limit + 1)
    if source is not None:
        query = query.where(Order.source == source)
    if customer_id is not None:
        query = query.where(
            Customer.external_id == customer_id, Customer.source == (source or "api")
        )
    rows = list(session.execute(query))
    return [order_view(o, c) for o, c in rows[:limit]], _next_after([o for o, _ in rows], limit)


def list_spend(session: Session, after: int, limit: int) -> tuple[list[dict[str, Any]], int | None]:
    query = (
        select(AcquisitionSpend)
        .where(AcquisitionSpend.pk > after)
        .order_by(AcquisitionSpend.pk)
        .limit(limit + 1)
    )
    rows = list(session.scalars(query))
    return [spend_view(r) for r in rows[:limit]], _next_after(rows, limit)


def _next_after(rows: list[Any], limit: int) -> int | None:
    return rows[limit - 1].pk if len(rows) > limit else None
