"""Each counted order's neighbours in its customer's purchase history.

`prev_counted_at` / `next_counted_at` of an order are the times of the same
customer's counted orders just before and after it (ties broken by pk); they are
NULL on orders that do not count. Ingestion refreshes them for every customer a
write touches, so the metrics engine reads a customer's history from single rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session

from service.ingestion.changes import TimeSpan
from service.ingestion.sql import is_postgresql
from service.models import Customer, Order

COUNTED = (Order.status == "completed") & ~Order.test


def refresh_purchase_history(session: Session, customer_pks: Iterable[int]) -> TimeSpan | None:
    """Recompute the neighbours of these customers' orders; the span of the rows that changed."""
    pks = sorted(set(customer_pks))
    if not pks:
        return None
    if is_postgresql(session):
        # Concurrent writers of one customer must not each compute its history
        # without the other's orders: the second waits here for the first to commit,
        # then its UPDATE (a new statement) sees them. Same lock order as customer
        # batches take, so the two cannot deadlock.
        session.execute(
            select(Customer.pk)
            .where(Customer.pk.in_(pks))
            .order_by(Customer.source, Customer.external_id)
            .with_for_update(key_share=True)
        )
    statement = _refresh_statement(Order.customer_pk.in_(pks)).returning(Order.placed_at)
    return TimeSpan.covering(session.scalars(statement))


def rebuild_purchase_history(session: Session) -> int:
    """Recompute every order's neighbours (after a bulk load); the number of rows changed."""
    result = session.execute(_refresh_statement(None))
    return int(result.rowcount)  # type: ignore[attr-defined]


def _refresh_statement(customers: Any) -> Any:
    # Counted and other orders form separate sequences; only the counted one is kept.
    partition = [Order.customer_pk, COUNTED]
    order = [Order.placed_at, Order.pk]
    history = select(
        Order.pk,
        case(
            (COUNTED, func.lag(Order.placed_at).over(partition_by=partition, order_by=order))
        ).label("prev_at"),
        case(
            (COUNTED, func.lead(Order.placed_at).over(partition_by=partition, order_by=order))
        ).label("next_at"),
    )
    if customers is not None:
        history = history.where(customers)
    neighbours = history.cte("neighbours")
    return (
        update(Order)
        .where(Order.pk == neighbours.c.pk)
        .where(
            or_(
                Order.prev_counted_at.is_distinct_from(neighbours.c.prev_at),
                Order.next_counted_at.is_distinct_from(neighbours.c.next_at),
            )
        )
        .values(prev_counted_at=neighbours.c.prev_at, next_counted_at=neighbours.c.next_at)
    )
