"""Erasing stored records: a customer with every order of theirs, or one order."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.change_log import counted_orders_span, queue_customers, record_change
from service.models import Customer, Order


def erase_customer(session: Session, source: str, customer_id: str, now: datetime) -> bool:
    """Delete a customer and every order of theirs (an erasure request); False if unknown."""
    pk = session.scalar(
        select(Customer.pk).where(Customer.source == source, Customer.external_id == customer_id)
    )
    if pk is None:
        return False
    span = counted_orders_span(session, [pk])
    # Explicit, not only ON DELETE CASCADE: the erasure must not depend on a pragma.
    session.execute(delete(Order).where(Order.customer_pk == pk))
    session.execute(delete(Customer).where(Customer.pk == pk))
    record_change(session, span, now)
    return True


def erase_order(session: Session, source: str, order_id: str, now: datetime) -> bool:
    """Delete one order (a platform deleted it); False if unknown."""
    found = session.execute(
        select(Order.pk, Order.customer_pk).where(
            Order.source == source, Order.external_id == order_id
        )
    ).first()
    if found is None:
        return False
    span = counted_orders_span(session, [found.customer_pk])
    session.execute(delete(Order).where(Order.pk == found.pk))
    queue_customers(session, [found.customer_pk])
    record_change(session, span, now)
    return True
