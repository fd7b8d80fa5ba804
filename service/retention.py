"""Bounded storage: settled webhook deliveries and the change log are kept RETENTION_DAYS.

A pruned delivery leaves a tombstone, kept DEDUP_RETENTION_DAYS, for de-duplication.

What goes, and why it is safe:

- The body and headers of a delivery that was mapped (`processed` or `ignored`),
  received and settled more than RETENTION_DAYS ago. Its record lives in the
  record tables; the raw copy only served replays. The row stays as a tombstone
  (`pruned`: sender, delivery key, topic, times) because de-duplication needs
  it: a copy resent by hand (a Standard Webhooks "resend", a replayed Shopify
  event) must still be answered `duplicate`. Mapped again it could revert a
  newer version of its record, since `updated_at` is optional and without it
  the later delivery wins. `failed` and `received` deliveries are never pruned:
  they are what `webhooks replay` needs.
- Tombstones received more than DEDUP_RETENTION_DAYS ago (0: never). A copy
  resent after that is stored and mapped again as new. No sender retries that
  late on its own: Shopify retries 8 times over 4 hours (19 times over 48 hours
  before September 2024), Standard Webhooks senders such as Svix over about 27
  hours, WooCommerce not at all on a timer (it disables a webhook after 5
  failures).
- Change-log entries (`data_changes`) recorded more than RETENTION_DAYS ago. A
  cached report at version v recomputes the periods the changes after v reach
  (`service.metrics.answer`); with those changes gone it would be served stale.
  So the newest pruned entry is kept and widened to all time: a report cached
  before it recomputes everything, one cached after needs nothing pruned. Each
  step commits a state where that holds, so a reader never sees a gap.
  Shared reports older than that entry (`metric_reports`) can only be recomputed
  in full, so they go too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CompoundSelect, Select, delete, false, func, select, update
from sqlalchemy.orm import Session

from service.change_log import ALL_TIME
from service.config import Settings
from service.db import Database
from service.models import DataChange, StoredReport, WebhookDelivery

SETTLED = ("processed", "ignored")
PRUNED = "pruned"  # a tombstone: the identity of a delivery whose body is gone
# Rows per transaction: short locks and bounded WAL, however much is due.
BATCH = 5_000


@dataclass(frozen=True)
class PruneResult:
    """What went (or, in a dry run, would go)."""

    cutoff: datetime | None  # None: RETENTION_DAYS=0 keeps everything
    bodies: int = 0  # deliveries turned into tombstones
    tombstones: int = 0  # tombstones deleted (past DEDUP_RETENTION_DAYS)
    changes: int = 0
    reports: int = 0
    complete: bool = True  # False: the time budget ran out first; call again


def prune(
    database: Database,
    settings: Settings,
    now: datetime,
    dry_run: bool = False,
    budget_seconds: float | None = None,
) -> PruneResult:
    """Prune what is older than the retention; count it only, if `dry_run`.

    With `budget_seconds`, stops after the batch that exceeds it (the mapper must
    get back to mapping): the result is then not `complete`.
    """
    if not settings.retention_days:
        return PruneResult(None)
    cutoff = now - timedelta(days=settings.retention_days)
    dedup_cutoff = _dedup_cutoff(settings, now)
    if dry_run:
        with database.sessions() as session:
            floor = _change_floor(session, cutoff)
            return PruneResult(
                cutoff,
                _count(session, _settled_before(cutoff)),
                _count(session, _due_tombstones(cutoff, dedup_cutoff)),
                _count(session, select(DataChange.version).where(DataChange.version < floor)),
                _count(session, select(StoredReport.version).where(StoredReport.version < floor)),
            )
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    bodies, complete = _in_batches(database, _bury(cutoff), deadline)
    if not complete:
        return PruneResult(cutoff, bodies, complete=False)
    tombstones, complete = _in_batches(database, _delete_tombstones(dedup_cutoff), deadline)
    if not complete:
        return PruneResult(cutoff, bodies, tombstones, complete=False)
    changes, reports, complete = _prune_change_log(database, cutoff, deadline)
    return PruneResult(cutoff, bodies, tombstones, changes, reports, complete)


def _dedup_cutoff(settings: Settings, now: datetime) -> datetime | None:
    if not settings.dedup_retention_days:
        return None  # tombstones are kept forever
    return now - timedelta(days=max(settings.dedup_retention_days, settings.retention_days))


def _settled_before(cutoff: datetime) -> Select[Any]:
    return select(WebhookDelivery.pk).where(
        WebhookDelivery.received_at < cutoff,
        WebhookDelivery.status.in_(SETTLED),
        WebhookDelivery.processed_at < cutoff,
    )


def _tombstones_before(cutoff: datetime | None) -> Select[Any]:
    if cutoff is None:
        return select(WebhookDelivery.pk).where(false())
    return select(WebhookDelivery.pk).where(
        WebhookDelivery.received_at < cutoff, WebhookDelivery.status == PRUNED
    )


def _due_tombstones(
    cutoff: datetime, dedup_cutoff: datetime | None
) -> Select[Any] | CompoundSelect[Any]:
    """The tombstones a prune would delete: those there are, and those it makes first."""
    if dedup_cutoff is None:
        return _tombstones_before(None)
    return _tombstones_before(dedup_cutoff).union_all(
        _settled_before(cutoff).where(WebhookDelivery.received_at < dedup_cutoff)
    )


def _bury(cutoff: datetime):  # type: ignore[no-untyped-def]
    """Drop the bytes of a batch of settled deliveries; their identity stays."""
    batch = _settled_before(cutoff).order_by(WebhookDelivery.received_at).limit(BATCH)
    return (
        update(WebhookDelivery)
        .where(WebhookDelivery.pk.in_(batch.scalar_subquery()))
        .values(status=PRUNED, body=b"", headers={}, error=None)
    )


def _delete_tombstones(cutoff: datetime | None):  # type: ignore[no-untyped-def]
    batch = _tombstones_before(cutoff).order_by(WebhookDelivery.received_at).limit(BATCH)
    return delete(WebhookDelivery).where(WebhookDelivery.pk.in_(batch.scalar_subquery()))


def _prune_change_log(
    database: Database, cutoff: datetime, deadline: float | None
) -> tuple[int, int, bool]:
    with database.transaction() as session:
        floor = _change_floor(session, cutoff)
        if not floor:
            return 0, 0, True
        # First the floor entry says "all time", then what it stands for may go.
        session.execute(
            update(DataChange)
            .where(DataChange.version == floor)
            .values(changed_from=ALL_TIME.first, changed_to=ALL_TIME.last)
        )
    batch = (
        select(DataChange.version)
        .where(DataChange.version < floor)
        .order_by(DataChange.version)
        .limit(BATCH)
    )
    changes, complete = _in_batches(
        database,
        delete(DataChange).where(DataChange.version.in_(batch.scalar_subquery())),
        deadline,
    )
    with database.transaction() as session:
        reports = session.execute(delete(StoredReport).where(StoredReport.version < floor))
    return changes, int(reports.rowcount), complete  # type: ignore[attr-defined]


def _change_floor(session: Session, cutoff: datetime) -> int:
    """The newest change-log version recorded before `cutoff` (0: none)."""
    newest = session.scalar(
        select(func.max(DataChange.version)).where(DataChange.recorded_at < cutoff)
    )
    return int(newest or 0)


def _in_batches(  # type: ignore[no-untyped-def]
    database: Database, statement, deadline: float | None
) -> tuple[int, bool]:
    """Run the statement until it changes less than a batch (done) or the deadline passes."""
    total = 0
    while True:
        with database.transaction() as session:
            changed = int(session.execute(statement).rowcount)
        total += changed
        if changed < BATCH:
            return total, True
        if deadline is not None and time.monotonic() > deadline:
            return total, False


def _count(session: Session, query: Select[Any] | CompoundSelect[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
