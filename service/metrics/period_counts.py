"""Per-period customer counts and revenue, in a few set-based statements.

Every quantity of METRICS.md §3-§4 is read from one pass over the counted orders
placed in [first boundary - W, last boundary). Each order row carries its
customer's previous and next counted order (kept by ingestion), so the order
alone tells which boundaries it keeps its customer active at, whether it is its
customer's first order of a period, and so on. Orders are bucketed by period
(`width_bucket` on PostgreSQL) and grouped by a handful of small keys; Python
then walks those groups (hundreds of rows, never one per order or customer).

Notation, for boundaries t_0 < … < t_n and u_j = t_j - W:
  bp  period holding the order's time p        (t_bp ≤ p < t_bp+1; -1 before t_0)
  be  last boundary index j with u_j ≤ p       (p keeps its customer active at t_j iff j ≤ be)
  bn  period holding the customer's next counted order (n if none in range)
An order is the customer's last order before boundary t_j iff bp < j ≤ bn, so it
makes its customer active at exactly the boundaries bp < j ≤ min(bn, be).

A customer with orders in a period longer than W may lapse inside it; only then
is a second statement needed, grouping those periods' orders by customer.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    DateTime,
    Integer,
    Table,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import Session

from service.db import UTCDateTime
from service.metrics.query import Filters
from service.metrics.shared_snapshot import rows_in_parts
from service.models import Customer, Order, StaleHistory

_ORDERS = typing.cast(Table, Order.__table__)
COUNTED = and_(Order.status == "completed", ~Order.test)


@dataclass
class PeriodCounts:
    """The integer facts of one period, from which every §4 field follows."""

    customers_start: int = 0
    customers_end: int = 0
    new_customers: int = 0
    lost_customers: int = 0
    reactivated_customers: int = 0
    orders: int = 0
    revenue_minor: int = 0
    buyers: int = 0
    repeat_buyers: int = 0
    returning_buyers: int = 0


def count_periods(
    session: Session, boundaries: Sequence[datetime], window: timedelta, filters: Filters
) -> list[PeriodCounts]:
    """Counts for the consecutive periods [t_k, t_k+1) between the given boundaries."""
    n = len(boundaries) - 1
    shifted = [t - window for t in boundaries]
    bucket = _Bucketer(session, boundaries, shifted)
    periods = [PeriodCounts() for _ in range(n)]
    active_delta = [0] * (n + 2)  # difference array of "active at t_j"
    react_before = [0] * n  # first orders of a period whose customer had lapsed before it

    stale = _histories_queued(session)

    def groups_of(part: ColumnElement[bool], first: bool) -> Any:
        orders = _counted_orders(stale, part, with_queued=first)
        return _order_groups(bucket, shifted[0], boundaries[-1], filters, n, orders)

    for row in rows_in_parts(session, _ORDERS, groups_of):
        bp, be, bnc, count, net = row.bp, row.be, row.bnc, row.orders, int(row.net or 0)
        if 0 <= bp < n:
            period = periods[bp]
            period.orders += count
            period.revenue_minor += net
            if row.first_of_period:
                period.buyers += count
                period.repeat_buyers += count if bnc == bp else 0
                period.new_customers += count if row.first_ever else 0
                period.returning_buyers += 0 if row.first_ever else count
                react_before[bp] += count if row.lapsed_before else 0
        low, high = bp + 1, min(bnc, be)
        if low <= high:
            active_delta[low] += count
            active_delta[high + 1] -= count
        if bp < be < n and bnc > be:
            # No order in period `be`: active at its start, lapsed by its end.
            periods[be].lost_customers += count

    active = 0
    active_at = []
    for j in range(n + 1):
        active += active_delta[j]
        active_at.append(active)
    for k, period in enumerate(periods):
        period.customers_start, period.customers_end = active_at[k], active_at[k + 1]
        period.reactivated_customers = react_before[k]

    long_periods = [k for k in range(n) if boundaries[k + 1] - boundaries[k] > window]
    if long_periods:
        orders = _counted_orders(stale, true(), with_queued=True)
        _count_lapses_within(session, bucket, boundaries, orders, filters, long_periods, periods)
    return periods


def _histories_queued(session: Session) -> bool:
    """Whether this snapshot holds orders whose stored neighbours are not up to date.

    Metric reads refresh the queue first, so this is rare: a write committed
    between the refresh and the read's snapshot.
    """
    return bool(session.scalar(select(exists().select_from(StaleHistory))))


def _counted_orders(stale: bool, part: ColumnElement[bool], with_queued: bool) -> Any:
    """The counted orders (of one `part` of the table) with their neighbours.

    With `stale`, orders of customers still queued for a refresh get neighbours
    computed here from their customer's orders (`with_queued`; one part of a
    split pass carries them), and their stored ones are not used: an answer is
    exact whatever the refresh has reached.
    """
    columns = (
        Order.customer_pk,
        Order.source,
        Order.placed_at,
        Order.total_minor,
        Order.refunded_minor,
    )
    stored = select(*columns, Order.prev_counted_at, Order.next_counted_at).where(COUNTED, part)
    if not stale:
        return stored.subquery("counted_orders")
    queued = select(StaleHistory.customer_pk)
    stored = stored.where(Order.customer_pk.not_in(queued))
    if not with_queued:
        return stored.subquery("counted_orders")

    def neighbour(function: Any) -> Any:
        # As purchase_history computes them: among counted orders, ties by pk.
        return function(Order.placed_at, type_=UTCDateTime()).over(
            partition_by=Order.customer_pk, order_by=[Order.placed_at, Order.pk]
        )

    recomputed = select(
        *columns,
        neighbour(func.lag).label("prev_counted_at"),
        neighbour(func.lead).label("next_counted_at"),
    ).where(COUNTED, Order.customer_pk.in_(queued))
    return union_all(stored, recomputed).subquery("counted_orders")


def _order_groups(
    bucket: _Bucketer,
    low: datetime,
    high: datetime,
    filters: Filters,
    n: int,
    orders: Any,
) -> Any:
    """The counted orders placed in [low, high), grouped by the keys `count_periods` reads."""
    o = orders.c
    p, prev, nxt = o.placed_at, o.prev_counted_at, o.next_counted_at
    bp = bucket.by_period(p)
    be = bucket.by_window(p)
    bn = func.coalesce(bucket.by_period(nxt), n)
    per_order = (
        select(
            bp.label("bp"),
            be.label("be"),
            # Only whether bn is past be matters beyond be, which keeps groups few.
            case((bn < be + 1, bn), else_=be + 1).label("bnc"),
            _flag(prev.is_(None) | (bucket.by_period(prev) < bp)).label("first_of_period"),
            _flag(prev.is_(None)).label("first_ever"),
            _flag(prev.is_not(None) & (bucket.by_window(prev) < bp)).label("lapsed_before"),
            (o.total_minor - o.refunded_minor).label("net"),
        )
        .select_from(orders)
        .where(p >= low, p < high)
        .where(*_customer_filters(filters, orders))
    )
    if filters.channel is not None or filters.country is not None:
        per_order = per_order.join(Customer, Customer.pk == o.customer_pk)
    rows = per_order.subquery("per_order")
    keys = [rows.c.bp, rows.c.be, rows.c.bnc]
    flags = [rows.c.first_of_period, rows.c.first_ever, rows.c.lapsed_before]
    return select(
        *keys, *flags, func.count().label("orders"), func.sum(rows.c.net).label("net")
    ).group_by(*keys, *flags)


def _count_lapses_within(
    session: Session,
    bucket: _Bucketer,
    boundaries: Sequence[datetime],
    orders: Any,
    filters: Filters,
    long_periods: list[int],
    periods: list[PeriodCounts],
) -> None:
    """Customers whose last order of a period is more than W before its end.

    Such a customer is not active at the period's end: lost if they were active
    at its start, and not reactivated even though they ordered in it.
    """
    o = orders.c
    p, prev = o.placed_at, o.prev_counted_at
    bp = bucket.by_period(p)
    per_order = (
        select(o.customer_pk, bp.label("bp"), p.label("p"), prev.label("prev"))
        .select_from(orders)
        .where(p >= boundaries[0], p < boundaries[-1])
        .where(*_customer_filters(filters, orders))
    )
    if filters.channel is not None or filters.country is not None:
        per_order = per_order.join(Customer, Customer.pk == o.customer_pk)
    rows = per_order.subquery("per_order")
    per_customer = (
        select(
            rows.c.bp,
            func.max(rows.c.p).label("last_at"),
            # The first order of the period is the only one whose previous order is
            # before the period: min(prev) is the customer's last order before it.
            func.min(rows.c.prev).label("before_at"),
            func.max(_flag(rows.c.prev.is_(None))).label("first_ever"),
        )
        .where(rows.c.bp.in_(long_periods))
        .group_by(rows.c.customer_pk, rows.c.bp)
        .subquery("per_customer")
    )
    c = per_customer.c
    lapsed = bucket.by_window(c.last_at) == c.bp  # last order < t_bp+1 - W
    was_active = _flag((c.first_ever == 0) & (bucket.by_window(c.before_at) >= c.bp))
    statement = (
        select(c.bp, c.first_ever, was_active.label("was_active"), func.count().label("customers"))
        .where(lapsed)
        .group_by(c.bp, c.first_ever, was_active)
    )
    for row in session.execute(statement):
        period = periods[row.bp]
        if row.was_active:
            period.lost_customers += row.customers
        elif not row.first_ever:
            period.reactivated_customers -= row.customers


def _customer_filters(filters: Filters, orders: Any) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.channel is not None:
        conditions.append(Customer.acquisition_channel == filters.channel)
    if filters.country is not None:
        conditions.append(Customer.country == filters.country)
    if filters.source is not None:
        conditions.append(orders.c.source == filters.source)  # an order's source is its customer's
    return conditions


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return case((condition, 1), else_=0)


class _Bucketer:
    """Index of the last boundary ≤ an instant: -1 before the first one.

    PostgreSQL has `width_bucket` over a sorted array. SQLite counts the boundaries
    at or before the value from a JSON array of its stored text form.
    """

    def __init__(self, session: Session, periods: Sequence[datetime], window: Sequence[datetime]):
        self.postgresql = session.get_bind().dialect.name == "postgresql"
        self.periods = self._parameter("period_boundaries", periods)
        self.window = self._parameter("window_boundaries", window)

    def by_period(self, instant: Any) -> ColumnElement[int]:
        return self._bucket(instant, self.periods)

    def by_window(self, instant: Any) -> ColumnElement[int]:
        return self._bucket(instant, self.window)

    def _parameter(self, name: str, instants: Sequence[datetime]) -> Any:
        if self.postgresql:
            return bindparam(name, list(instants), type_=ARRAY(DateTime(timezone=True)))
        stored = [t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") for t in instants]
        return bindparam(name, json.dumps(stored))

    def _bucket(self, instant: Any, boundaries: Any) -> ColumnElement[int]:
        if self.postgresql:
            return func.width_bucket(instant, boundaries, type_=Integer) - 1
        each = func.json_each(boundaries).table_valued("value")
        at_or_before = select(func.count()).select_from(each).where(each.c.value <= instant)
        # Like width_bucket, no bucket for NULL.
        return case((instant.is_(None), None), else_=at_or_before.scalar_subquery() - literal(1))
