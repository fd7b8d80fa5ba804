"""Metrics support: each counted order's neighbours, and the data-change log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INSTANT = sa.DateTime(timezone=True)

# Orders already stored get their neighbours here; afterwards ingestion keeps them.
BACKFILL = """
UPDATE orders SET prev_counted_at = neighbours.prev_at, next_counted_at = neighbours.next_at
FROM (
    SELECT pk,
           lag(placed_at) OVER w AS prev_at,
           lead(placed_at) OVER w AS next_at
    FROM orders
    WHERE status = 'completed' AND NOT test
    WINDOW w AS (PARTITION BY customer_pk ORDER BY placed_at, pk)
) AS neighbours
WHERE orders.pk = neighbours.pk
"""


def upgrade() -> None:
    with op.batch_alter_table("orders") as orders:
        orders.add_column(sa.Column("prev_counted_at", INSTANT))
        orders.add_column(sa.Column("next_counted_at", INSTANT))
    op.execute(BACKFILL)

    version = op.create_table(
        "data_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(version, [{"id": 1, "version": 0}])
    op.create_table(
        "data_changes",
        sa.Column("version", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("changed_from", INSTANT, nullable=False),
        sa.Column("changed_to", INSTANT, nullable=False),
        sa.Column("recorded_at", INSTANT, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("data_changes")
    op.drop_table("data_version")
    with op.batch_alter_table("orders") as orders:
        orders.drop_column("next_counted_at")
        orders.drop_column("prev_counted_at")
