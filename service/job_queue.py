"""The job queue: one-off work put in the database, claimed by one background worker at a time.

`enqueue` adds a job in the caller's transaction, so it exists exactly when the
caller's writes do. A worker claims the first due job of the kinds it knows in
one conditional UPDATE (PostgreSQL: of a row locked with FOR UPDATE SKIP LOCKED,
so two claimers never take the same row, nor wait on each other; SQLite: one
writer at a time), which sets its lease: owner and expiry. While it runs the
job, the worker renews the lease; it settles the job (`finish`, `fail`) only if
it still holds the lease. A job whose worker died is claimed again once its
lease has lapsed, as another attempt: a job is run again only after its holder
stopped renewing for a whole lease (it died, or lost the database that long), so
a kind's work must be safe to do again. Instants come from the workers' clocks,
which must agree to well within a lease.
"""

from __future__ import annotations

import typing
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, and_, insert, or_, select, update
from sqlalchemy.orm import Session

from service.db import Database
from service.models import Job
from service.models.job import JOB_KIND_LENGTH, UNFINISHED

DEFAULT_MAX_ATTEMPTS = 3
LAPSED = "its worker stopped renewing its lease (it died?) during the last attempt"


@dataclass(frozen=True)
class ClaimedJob:
    """A job this worker holds, until `lease_until` unless renewed."""

    pk: int
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    owner: str
    lease_until: datetime

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    *,
    run_after: datetime | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    now: datetime | None = None,
) -> int:
    """Queue a job of `kind` (run once this transaction commits, not before `run_after`); its pk."""
    if not 0 < len(kind) <= JOB_KIND_LENGTH:
        raise ValueError(f"a job kind is 1 to {JOB_KIND_LENGTH} characters, got {kind!r}")
    if max_attempts < 1:
        raise ValueError("a job needs at least one attempt")
    now = now or datetime.now(UTC)
    pk = session.scalar(
        insert(Job)
        .values(
            kind=kind,
            payload=payload,
            state="queued",
            attempts=0,
            max_attempts=max_attempts,
            run_after=run_after or now,
            created_at=now,
        )
        .returning(Job.pk)
    )
    return int(typing.cast(int, pk))


def claim(
    database: Database,
    kinds: Collection[str],
    owner: str,
    lease: timedelta,
    now: datetime | None = None,
) -> ClaimedJob | None:
    """Take the first due job of these kinds for `owner`, leased for `lease`; None if none is due.

    Due: queued and past its `run_after`, or running under a lapsed lease with
    attempts left. Running jobs whose lease lapsed on their last attempt are
    marked failed first.
    """
    if not kinds:
        return None
    now = now or datetime.now(UTC)
    with database.transaction() as session:
        give_up_lapsed(session, now)
        first_due = (
            select(Job.pk)
            .where(
                UNFINISHED,  # as literals: the partial index's condition, for any plan
                Job.kind.in_(sorted(kinds)),
                Job.attempts < Job.max_attempts,
                or_(
                    and_(Job.state == "queued", Job.run_after <= now),
                    and_(Job.state == "running", Job.lease_until < now),
                ),
            )
            .order_by(Job.run_after, Job.pk)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        row = session.execute(
            update(Job)
            .where(Job.pk == first_due)
            .values(
                state="running",
                attempts=Job.attempts + 1,
                lease_owner=owner,
                lease_until=now + lease,
                started_at=now,
            )
            .returning(Job.pk, Job.kind, Job.payload, Job.attempts, Job.max_attempts),
            execution_options={"synchronize_session": False},
        ).one_or_none()
    if row is None:
        return None
    pk, kind, payload, attempt, max_attempts = row
    return ClaimedJob(int(pk), kind, payload, int(attempt), int(max_attempts), owner, now + lease)


def renew(
    database: Database, job: ClaimedJob, lease: timedelta, now: datetime | None = None
) -> ClaimedJob | None:
    """Extend the lease of a job this worker holds; None if it no longer holds it."""
    until = (now or datetime.now(UTC)) + lease
    with database.transaction() as session:
        if not _settle(session, job, lease_until=until):
            return None
    return ClaimedJob(
        job.pk, job.kind, job.payload, job.attempt, job.max_attempts, job.owner, until
    )


def finish(database: Database, job: ClaimedJob, result: Any, now: datetime | None = None) -> bool:
    """Mark a held job done with its result (JSON); False if its lease was lost meanwhile."""
    with database.transaction() as session:
        return _settle(
            session,
            job,
            state="done",
            result=result,
            error=None,
            finished_at=now or datetime.now(UTC),
            lease_owner=None,
            lease_until=None,
        )


def fail(
    database: Database,
    job: ClaimedJob,
    error: str,
    retry_in: timedelta,
    now: datetime | None = None,
) -> str | None:
    """Record a held job's failed attempt: queued again after `retry_in`, or failed for good
    after its last attempt. The state it is in now; None if its lease was lost meanwhile."""
    now = now or datetime.now(UTC)
    state = "failed" if job.is_last_attempt else "queued"
    with database.transaction() as session:
        settled = _settle(
            session,
            job,
            state=state,
            error=error,
            run_after=now + retry_in,
            finished_at=now if state == "failed" else None,
            lease_owner=None,
            lease_until=None,
        )
    return state if settled else None


def release(database: Database, job: ClaimedJob, now: datetime | None = None) -> bool:
    """Put a held job back in the queue, due now, its attempt not counted (its worker is
    stopping); False if its lease was lost meanwhile."""
    with database.transaction() as session:
        return _settle(
            session,
            job,
            state="queued",
            attempts=job.attempt - 1,
            run_after=now or datetime.now(UTC),
            lease_owner=None,
            lease_until=None,
        )


def give_up_lapsed(session: Session, now: datetime) -> int:
    """Mark failed the running jobs whose lease lapsed during their last attempt; how many."""
    result = session.execute(
        update(Job)
        .where(
            Job.state == "running",
            Job.lease_until < now,
            Job.attempts >= Job.max_attempts,
        )
        .values(state="failed", error=LAPSED, finished_at=now, lease_owner=None, lease_until=None),
        execution_options={"synchronize_session": False},
    )
    return int(typing.cast(CursorResult[Any], result).rowcount)


def _settle(session: Session, job: ClaimedJob, **values: Any) -> bool:
    """Update a job only while `job.owner` holds it, in this attempt; whether it did."""
    result = session.execute(
        update(Job)
        .where(
            Job.pk == job.pk,
            Job.state == "running",
            Job.lease_owner == job.owner,
            Job.attempts == job.attempt,
        )
        .values(**values),
        execution_options={"synchronize_session": False},
    )
    return typing.cast(CursorResult[Any], result).rowcount == 1
