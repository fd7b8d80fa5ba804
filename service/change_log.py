"""The change log: what each transaction changed, so the read side knows what to recompute.

Writers note two things here and nothing else: the span of instants a change may
affect (cached metric reports recompute the periods it meets) and the customers
whose order history changed (their purchase histories are recomputed before the
next metrics read, `service.metrics.purchase_history`). The log belongs to no
layer: ingestion, webhooks and erasures write it; the metrics read it. The app
factory installs its commit hooks on the database's sessions (`install`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import event, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.models import DataChange, DataVersion, Order, StaleHistory
from service.sql import pk_relation

_PENDING, _PENDING_AT = "customer_metrics.pending_changes", "customer_metrics.pending_changes_at"

# A calendar date in any time zone lies within this distance of the same date in UTC
# (offsets run from -12:00 to +14:00).
_ZONE_MARGIN = timedelta(days=1)
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class TimeSpan:
    """The closed range of instants [first, last] a change may affect."""

    first: datetime
    last: datetime

    @staticmethod
    def covering(instants: Iterable[datetime | None]) -> TimeSpan | None:
        known = [t for t in instants if t is not None]
        return TimeSpan(min(known), max(known)) if known else None

    @staticmethod
    def of_dates(first: date, last: date) -> TimeSpan:
        """Every instant of these calendar dates, in whatever time zone they are read."""
        return TimeSpan(_midnight(first, -_ZONE_MARGIN), _midnight(last, _ZONE_MARGIN + _DAY))

    def union(self, other: TimeSpan | None) -> TimeSpan:
        if other is None:
            return self
        return TimeSpan(min(self.first, other.first), max(self.last, other.last))


def _midnight(day: date, shift: timedelta) -> datetime:
    """Midnight UTC of `day`, shifted; held at the calendar's ends (0001-01-01, 9999-12-31)."""
    try:
        return datetime.combine(day + shift, time(), UTC)
    except OverflowError:
        end = datetime.min.replace(tzinfo=UTC) if shift < timedelta(0) else None
        return end or datetime.max.replace(tzinfo=UTC)


# For changes made around the log (a bulk load, a restore): every period is stale.
ALL_TIME = TimeSpan(datetime(1, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC))


def merge(spans: Iterable[TimeSpan | None]) -> TimeSpan | None:
    merged: TimeSpan | None = None
    for span in spans:
        if span is not None:
            merged = span.union(merged)
    return merged


def counted_orders_span(session: Session, customer_pks: Iterable[int]) -> TimeSpan | None:
    """From the first to the last counted order of these customers."""
    pks = sorted(set(customer_pks))
    if not pks:
        return None
    first, last = session.execute(
        select(func.min(Order.placed_at), func.max(Order.placed_at)).where(
            Order.customer_pk.in_(pks), Order.status == "completed", ~Order.test
        )
    ).one()
    if first is None:
        return None
    # min()/max() lose the column type on SQLite; read them back as instants.
    return TimeSpan(_instant(first), _instant(last))


def record_change(session: Session, span: TimeSpan | None, now: datetime) -> None:
    """Note that this transaction changed data (within `span`, if it can affect metrics).

    The change is written once, just before the transaction commits (see
    `write_pending_changes`), so the data version's row lock is held only for the
    commit itself and concurrent writers are not queued behind each other's work.
    """
    pending: list[TimeSpan | None] = session.info.setdefault(_PENDING, [])
    pending.append(span)
    session.info[_PENDING_AT] = now


def write_pending_changes(session: Session) -> int | None:
    """Bump the data version and log the merged span of the noted changes; the new version.

    Runs before every commit of the app's sessions (a `before_commit` hook).
    The bump takes the version row's lock until commit, so versions are handed
    out in commit order.
    """
    pending: list[TimeSpan | None] = session.info.pop(_PENDING, [])
    now: datetime = session.info.pop(_PENDING_AT, datetime.now(UTC))
    if not pending:
        return None
    version = session.execute(
        update(DataVersion)
        .where(DataVersion.id == 1)
        .values(version=DataVersion.version + 1)
        .returning(DataVersion.version)
    ).scalar_one()
    span = merge(pending)
    if span is not None:
        session.execute(
            insert(DataChange).values(
                version=version, changed_from=span.first, changed_to=span.last, recorded_at=now
            )
        )
    return int(version)


def forget_pending_changes(session: Session) -> None:
    """A rolled-back transaction changed nothing."""
    session.info.pop(_PENDING, None)
    session.info.pop(_PENDING_AT, None)


def queue_customers(session: Session, customer_pks: Iterable[int]) -> None:
    """Mark these customers' histories stale; the next metrics read recomputes them."""
    pks = sorted(set(customer_pks))
    if pks:
        keys = pk_relation(session, pks)
        session.execute(insert(StaleHistory).from_select(["customer_pk"], select(keys.c.pk)))


def current_version(session: Session) -> int:
    return int(session.execute(select(DataVersion.version).where(DataVersion.id == 1)).scalar_one())


def changes_since(session: Session, version: int) -> list[TimeSpan]:
    """The spans changed by every version after `version`."""
    rows = session.execute(
        select(DataChange.changed_from, DataChange.changed_to).where(DataChange.version > version)
    )
    return [TimeSpan(first, last) for first, last in rows]


def _instant(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def install(sessions: sessionmaker[Session]) -> None:
    """Log the noted changes of every transaction of these sessions, last, just before commit."""
    event.listen(sessions, "before_commit", write_pending_changes)
    event.listen(sessions, "after_rollback", forget_pending_changes)
