"""Background jobs: one-off work queued for the background worker, claimed under a lease.

A worker claims a job by setting its lease (owner and expiry) in one conditional
UPDATE; a job whose worker died is claimed again once its lease has lapsed
(service/job_queue.py). The partial index covers only unfinished jobs, so done
and failed ones cost claiming nothing.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
INSTANT = sa.DateTime(timezone=True)
UNFINISHED = sa.text("state IN ('queued', 'running')")


def upgrade() -> None:
    op.create_table(
        "background_jobs",
        sa.Column("pk", PK, primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", INSTANT, nullable=False),
        sa.Column("lease_owner", sa.String(255), nullable=True),
        sa.Column("lease_until", INSTANT, nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("started_at", INSTANT, nullable=True),
        sa.Column("finished_at", INSTANT, nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'done', 'failed')",
            name=op.f("ck_background_jobs_state_is_known"),
        ),
        sa.CheckConstraint(
            "attempts >= 0 AND max_attempts >= 1",
            name=op.f("ck_background_jobs_attempts_in_range"),
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_background_jobs")),
    )
    op.create_index(
        "ix_background_jobs_unfinished",
        "background_jobs",
        ["run_after", "pk"],
        postgresql_where=UNFINISHED,
        sqlite_where=UNFINISHED,
    )


def downgrade() -> None:
    op.drop_index("ix_background_jobs_unfinished", table_name="background_jobs")
    op.drop_table("background_jobs")
