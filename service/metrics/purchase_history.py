"""Each counted order's neighbours in its customer's purchase history.

`prev_counted_at` / `next_counted_at` of an order are the times of the same
customer's counted orders just before and after it (ties broken by pk); they are
NULL on orders that do not count. The metrics engine reads a customer's history
from single rows through them.

Writers do not compute them: they queue every customer whose orders they touch
(`queue_customers`, one cheap INSERT, no lock), so concurrent batches sharing
customers never wait on each other. The customer an order is moved away from
is queued by the database itself (a trigger, migration 0008): a writer whose
read missed the row, committed meanwhile by another, does not know it. Before
metrics are read, `refresh_stale` recomputes the queued customers' histories in
one set-based pass.
"""

from __future__ import annotations

import logging
import os
import time
import typing
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from psycopg.errors import LockNotAvailable
from sqlalchemy import (
    Table,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal_column,
    null,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from service.change_log import TimeSpan, merge, record_change
from service.db import Database, UTCDateTime
from service.models import COUNTED_STATUS, Order, StaleHistory
from service.sql import is_postgresql, pk_relation

log = logging.getLogger(__name__)

_ORDERS = typing.cast(Table, Order.__table__)
# pg_advisory_xact_lock keys: one refresher at a time per share ("PH" in ASCII, then k).
_REFRESH_LOCK = 0x5048_00
# PostgreSQL: queued customers are refreshed in this many shares (by customer pk), in
# parallel when the queue is long (after a bulk import), one after the other otherwise.
SHARES = max(1, min(os.cpu_count() or 1, 4))
PARALLEL_FROM = 5_000  # queued entries
# A refresher waiting this long on a writer's row lock gives up and retries: far
# below deadlock_timeout (1 s), so a refresher, never a writer, is the one to yield.
_LOCK_TIMEOUT = "200ms"
_ATTEMPTS = 20


def refresh_stale(database: Database, now: datetime | None = None) -> None:
    """Bring every queued customer's history up to date; metric reads call this first.

    Cheap when nothing is queued. A refresher that meets a writer's row lock rolls
    back (the queue with it) and tries again.
    """
    with database.sessions() as session:
        if not session.scalar(select(exists().select_from(StaleHistory))):
            return
        shares = SHARES if is_postgresql(session) else 1
        parallel = shares > 1 and _queue_longer_than(session, PARALLEL_FROM)
    stamp = now or datetime.now(UTC)
    if not parallel:
        for share in range(shares):
            _refresh_share(database, stamp, share, shares)
        return
    with ThreadPoolExecutor(shares, thread_name_prefix="history-refresh") as pool:
        for done in [
            pool.submit(_refresh_share, database, stamp, k, shares) for k in range(shares)
        ]:
            done.result()


def _queue_longer_than(session: Session, entries: int) -> bool:
    beyond = select(StaleHistory.pk).offset(entries).limit(1)
    return session.scalar(select(exists(beyond))) is True


def _refresh_share(database: Database, now: datetime, share: int, shares: int) -> None:
    for attempt in range(_ATTEMPTS):
        try:
            with database.transaction() as session:
                refresh_queued(session, now, share, shares)
            return
        except OperationalError as error:
            if attempt == _ATTEMPTS - 1 or not isinstance(error.orig, LockNotAvailable):
                raise
            log.info("purchase history refresh met a writer's lock; retrying")
            time.sleep(0.01 * (attempt + 1))


def refresh_queued(session: Session, now: datetime, share: int = 0, shares: int = 1) -> None:
    """Recompute the histories of queued customers and take them off the queue, in this
    transaction: on PostgreSQL those whose pk is `share` modulo `shares`, on SQLite all.

    On PostgreSQL one statement takes the queue and reads the orders: both come
    from the same snapshot, so every order a taken queue entry stands for is seen,
    and entries queued after it stay for the next refresh. Shares hold disjoint
    customers, hence disjoint orders, so they can run side by side.
    """
    if is_postgresql(session):
        session.execute(select(func.pg_advisory_xact_lock(_REFRESH_LOCK + share)))
        session.execute(text(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'"))
        mine = StaleHistory.customer_pk % shares == share
        taken = (
            delete(StaleHistory)
            .where(mine)
            .returning(StaleHistory.customer_pk, StaleHistory.changed_at)
            .cte("taken")
        )
        customers = select(taken.c.customer_pk.label("pk")).distinct().subquery("customers")
        history = _history(_orders_of(customers, by_ctid=True)).cte("history")
        changes = [history.c[name] for name in _CHANGE]
        updated = _update_from(history, by_row_id=True).returning(*changes).cte("updated")
        moved = session.execute(_moved_span(updated, also=taken.c.changed_at)).one()
        span = TimeSpan(moved[0], moved[1]) if moved[0] is not None else None
    else:
        # SQLite has one writer at a time (this transaction): read, write, then empty.
        queued = session.execute(select(StaleHistory.customer_pk, StaleHistory.changed_at)).all()
        if not queued:
            return
        pks = sorted({customer_pk for customer_pk, _ in queued})
        customers = pk_relation(session, pks)
        history = _history(_orders_of(customers, by_ctid=False)).subquery("history")
        changed = session.execute(
            select(history.c.pk, *[history.c[name] for name in _CHANGE]).where(_differs(history))
        ).all()
        if changed:
            session.execute(
                update(_ORDERS).where(_ORDERS.c.pk == bindparam("row_pk")),
                [
                    {"row_pk": r.pk, "prev_counted_at": r.prev_at, "next_counted_at": r.next_at}
                    for r in changed
                ],
            )
        session.execute(delete(StaleHistory))
        left = TimeSpan.covering(changed_at for _, changed_at in queued)
        span = merge([_moved_in_python(changed), left])
    record_change(session, span, now)


def rebuild_purchase_history(session: Session) -> int:
    """Recompute every order's neighbours (after a bulk load); the number of rows changed."""
    # The queue first: an entry committed after this DELETE stays for the next refresh,
    # and the UPDATE, a later statement, sees every order a deleted entry stood for.
    session.execute(delete(StaleHistory))
    orders = select(*_COLUMNS, Order.pk.label("row_id")).subquery("orders_of")
    result = session.execute(_update_from(_history(orders).cte("history"), by_row_id=False))
    return int(result.rowcount)  # type: ignore[attr-defined]


_CHANGE = ("placed_at", "old_prev", "old_next", "prev_at", "next_at")

_COLUMNS = (
    Order.pk,
    Order.customer_pk,
    Order.placed_at,
    Order.prev_counted_at,
    Order.next_counted_at,
    Order.status,
    Order.test,
)


def _update_from(history: Any, by_row_id: bool) -> Any:
    """UPDATE the orders whose stored neighbours differ from the computed ones.

    By ctid on PostgreSQL: a join by pk lets a planner with stale statistics hash
    the whole orders table for a few thousand rows; a TID scan needs no plan.
    """
    found = (
        (literal_column("orders.ctid") == history.c.row_id) & (Order.pk == history.c.pk)
        if by_row_id
        else Order.pk == history.c.pk
    )
    return (
        update(Order)
        .where(found, _differs(history))
        .values(prev_counted_at=history.c.prev_at, next_counted_at=history.c.next_at)
    )


def _differs(history: Any) -> Any:
    return or_(
        history.c.old_prev.is_distinct_from(history.c.prev_at),
        history.c.old_next.is_distinct_from(history.c.next_at),
    )


def _moved_instants(changes: Any) -> tuple[Any, Any]:
    """Per changed order, the first instants whose metrics its new neighbours move.

    A changed previous order matters only to the order's own period (is it its
    customer's first of the period, or ever?); a changed next order matters from
    the earlier of the old and new next order on (how long the customer stays
    active, and whether they bought twice in a period).
    """
    by_prev = case(
        (changes.c.old_prev.is_distinct_from(changes.c.prev_at), changes.c.placed_at),
        else_=null(),
    )
    by_next = case(
        (
            changes.c.old_next.is_distinct_from(changes.c.next_at),
            func.least(changes.c.old_next, changes.c.next_at),  # PostgreSQL: NULLs ignored
        ),
        else_=null(),
    )
    return by_prev, by_next


def _moved_span(changes: Any, also: Any) -> Any:
    """The span of the instants whose neighbours changed, and of the `also` column
    (the times orders left, which the queue carries)."""
    by_prev, by_next = _moved_instants(changes)
    instant = UTCDateTime()
    moved = select(
        func.least(func.min(by_prev), func.min(by_next)).label("first"),
        func.greatest(func.max(by_prev), func.max(by_next)).label("last"),
    ).subquery("moved")
    left = select(func.min(also).label("first"), func.max(also).label("last")).subquery("left")
    # Each an aggregate of one row, even over no rows.
    return select(
        func.least(moved.c.first, left.c.first, type_=instant),
        func.greatest(moved.c.last, left.c.last, type_=instant),
    ).select_from(moved.join(left, true()))


def _moved_in_python(changed: Iterable[Any]) -> TimeSpan | None:
    moved: list[datetime | None] = []
    for row in changed:
        if row.old_prev != row.prev_at:
            moved.append(row.placed_at)
        if row.old_next != row.next_at:
            moved.append(min(t for t in (row.old_next, row.next_at) if t is not None))
    return TimeSpan.covering(moved)


def _orders_of(customers: Any, by_ctid: bool) -> Any:
    """Every order of these customers (`customers.c.pk`), and what to update each by.

    On PostgreSQL each customer's orders are found by a LATERAL lookup (OFFSET 0
    keeps the planner from flattening it into a join it would plan as a full scan
    when statistics are stale; see sql.restricted_to_keys), with their ctid.
    """
    if not by_ctid:
        return (
            select(*_COLUMNS, Order.pk.label("row_id"))
            .where(Order.customer_pk.in_(select(customers.c.pk)))
            .subquery("orders_of")
        )
    lookup = (
        select(*_COLUMNS, literal_column("orders.ctid").label("row_id"))
        .where(Order.customer_pk == customers.c.pk)
        .offset(0)
        .lateral("o")
    )
    return select(lookup).select_from(customers).join(lookup, true()).subquery("orders_of")


def _history(orders: Any) -> Any:
    """Per order: its stored neighbours (old_*) and the ones its customer's history gives."""
    o = orders.c
    counted = (o.status == COUNTED_STATUS) & ~o.test
    # Counted and other orders form separate sequences; only the counted one is kept.
    partition = [o.customer_pk, counted]
    order = [o.placed_at, o.pk]
    instant = UTCDateTime()

    def neighbour(function: Any) -> Any:
        window = function(o.placed_at, type_=instant).over(partition_by=partition, order_by=order)
        return case((counted, window), else_=null())

    return select(
        o.pk,
        o.row_id,
        o.placed_at,
        o.prev_counted_at.label("old_prev"),
        o.next_counted_at.label("old_next"),
        neighbour(func.lag).label("prev_at"),
        neighbour(func.lead).label("next_at"),
    )
