"""One-off background work: a job waits in this table until a background worker runs it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, BigIntPK, UTCDateTime

JOB_STATES = ("queued", "running", "done", "failed")
JOB_KIND_LENGTH = 64
# The jobs a worker may claim: waiting ones, and running ones whose lease may have lapsed.
UNFINISHED = text("state IN ('queued', 'running')")


class Job(Base):
    """A job: what to do (`kind`, `payload`), where it stands, and who holds it.

    A worker claims a job by taking its lease (`lease_owner` until `lease_until`);
    another worker takes it again only once the lease has lapsed (its worker
    died), as a new attempt (service/job_queue.py).
    """

    __tablename__ = "background_jobs"
    __table_args__ = (
        CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name="state_is_known"),
        CheckConstraint("attempts >= 0 AND max_attempts >= 1", name="attempts_in_range"),
        # Claiming looks only at unfinished jobs, the first to be due first.
        Index(
            "ix_background_jobs_unfinished",
            "run_after",
            "pk",
            postgresql_where=UNFINISHED,
            sqlite_where=UNFINISHED,
        ),
    )

    pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(JOB_KIND_LENGTH))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    # Attempts started so far (a claim counts one), and how many it may have.
    attempts: Mapped[int] = mapped_column(Integer)
    max_attempts: Mapped[int] = mapped_column(Integer)
    # Not claimed before this instant (set again after a failed attempt: the retry's pause).
    run_after: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    result: Mapped[Any | None] = mapped_column(JSON)
    # The last failed attempt's error.
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
