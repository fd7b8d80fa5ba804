"""Index settled deliveries by arrival: pruning finds their bodies past a year of tombstones.

Pruning keeps a delivery's identity as a `pruned` tombstone (service/retention.py),
so the oldest rows by `received_at` are tombstones; this partial index lets the
prune go straight to the settled deliveries whose bodies are due.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SETTLED = sa.text("status IN ('processed', 'ignored')")


def upgrade() -> None:
    op.create_index(
        "ix_webhook_deliveries_settled_received_at",
        "webhook_deliveries",
        ["received_at"],
        postgresql_where=SETTLED,
        sqlite_where=SETTLED,
    )


def downgrade() -> None:
    # Tombstones have no body to map: a downgraded service must not see them as mapped.
    op.execute("DELETE FROM webhook_deliveries WHERE status = 'pruned'")
    op.drop_index("ix_webhook_deliveries_settled_received_at", table_name="webhook_deliveries")
