"""Each counted order's neighbours in its customer's purchase history.

`prev_counted_at` / `next_counted_at` of an order are the times of the same
customer's counted orders just before and after it (ties broken by pk); they are
NULL on orders that do not count. Ingestion refreshes them for every customer a
write touches, so the metrics engine reads a customer's history from single rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, case, cast, func, null, or_, select, true, update
from sqlalchemy.orm import Session

from service.db import UTCDateTime
from service.ingestion.changes import TimeSpan
from service.ingestion.sql import is_postgresql, key_relation
from service.models import Customer, Order


def refresh_purchase_history(session: Session, customer_pks: Iterable[int]) -> TimeSpan | None:
    """Recompute the neighbours of these customers' orders; the instants whose metrics moved.

    A changed previous order matters only to the order's own period (is it its
    customer's first of the period, or ever?); a changed next order matters from
    the earlier of the old and new next order on (how long the customer stays
    active, and whether they bought twice in a period). So appending a new order
    touches metrics from that order on, not from the customer's first order.
    """
    pks = sorted(set(customer_pks))
    if not pks:
        return None
    if is_postgresql(session):
        # Concurrent writers of one customer must not each compute its history
        # without the other's orders: the second waits here for the first to commit,
        # then its statements see them. Same lock order as customer batches take,
        # so the two cannot deadlock.
        session.execute(
            select(Customer.pk)
            .where(Customer.pk.in_(select(_pk_relation(session, pks).c.pk)))
            .order_by(Customer.source, Customer.external_id)
            .with_for_update(key_share=True)
        )
    history = _history(_orders_of(session, pks)).cte("history")
    changed_rows = _update_from(history).returning(
        history.c.placed_at,
        history.c.old_prev,
        history.c.old_next,
        history.c.prev_at,
        history.c.next_at,
    )
    if is_postgresql(session):
        # One statement: the CTE is read before the update, so it returns the old values.
        changed = session.execute(changed_rows).all()
    else:
        # SQLite's RETURNING cannot name the FROM table: read the changes, then write them.
        changed = session.execute(select(history).where(_differs(history))).all()
        if changed:
            session.execute(_update_from(history))
    if not changed:
        return None
    moved: list[datetime | None] = []
    for row in changed:
        if row.old_prev != row.prev_at:
            moved.append(row.placed_at)
        if row.old_next != row.next_at:
            moved.append(min(t for t in (row.old_next, row.next_at) if t is not None))
    return TimeSpan.covering(moved)


def rebuild_purchase_history(session: Session) -> int:
    """Recompute every order's neighbours (after a bulk load); the number of rows changed."""
    result = session.execute(_update_from(_history(select(*_COLUMNS).subquery()).cte("history")))
    return int(result.rowcount)  # type: ignore[attr-defined]


def _update_from(history: Any) -> Any:
    """UPDATE the orders whose stored neighbours differ from the computed ones."""
    return (
        update(Order)
        .where(Order.pk == history.c.pk, _differs(history))
        .values(prev_counted_at=history.c.prev_at, next_counted_at=history.c.next_at)
    )


def _differs(history: Any) -> Any:
    return or_(
        history.c.old_prev.is_distinct_from(history.c.prev_at),
        history.c.old_next.is_distinct_from(history.c.next_at),
    )


_COLUMNS = (
    Order.pk,
    Order.customer_pk,
    Order.placed_at,
    Order.prev_counted_at,
    Order.next_counted_at,
    Order.status,
    Order.test,
)


def _pk_relation(session: Session, pks: list[int]) -> Any:
    keys = key_relation(session, [str(pk) for pk in pks])
    return select(cast(keys.c.key, BigInteger).label("pk")).subquery("customer_keys")


def _orders_of(session: Session, pks: list[int]) -> Any:
    """Every order of these customers, each customer's found through the index.

    On PostgreSQL a LATERAL lookup per customer (OFFSET 0 keeps the planner from
    flattening it into a join it would plan as a full scan when statistics are stale;
    see sql.restricted_to_keys).
    """
    if not is_postgresql(session):
        return select(*_COLUMNS).where(Order.customer_pk.in_(pks)).subquery()
    customers = _pk_relation(session, pks)
    lookup = select(*_COLUMNS).where(Order.customer_pk == customers.c.pk).offset(0).lateral("o")
    return select(lookup).select_from(customers).join(lookup, true()).subquery("orders_of")


def _history(orders: Any) -> Any:
    """Per order: its stored neighbours (old_*) and the ones its customer's history gives."""
    o = orders.c
    counted = (o.status == "completed") & ~o.test
    # Counted and other orders form separate sequences; only the counted one is kept.
    partition = [o.customer_pk, counted]
    order = [o.placed_at, o.pk]
    instant = UTCDateTime()

    def neighbour(function: Any) -> Any:
        window = function(o.placed_at, type_=instant).over(partition_by=partition, order_by=order)
        return case((counted, window), else_=null())

    return select(
        o.pk,
        o.placed_at,
        o.prev_counted_at.label("old_prev"),
        o.next_counted_at.label("old_next"),
        neighbour(func.lag).label("prev_at"),
        neighbour(func.lead).label("next_at"),
    )
