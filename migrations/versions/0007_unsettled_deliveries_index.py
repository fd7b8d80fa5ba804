"""Index only the deliveries still to settle (received or failed), not every delivery.

Almost every stored delivery ends `processed`: an index over all their statuses
grows with the table and takes an entry on every status change, while the mapper
and `webhooks deliveries --status failed` only ever look for the few unsettled.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNSETTLED = sa.text("status IN ('received', 'failed')")


def upgrade() -> None:
    op.drop_index("ix_webhook_deliveries_status", table_name="webhook_deliveries")
    op.create_index(
        "ix_webhook_deliveries_unsettled",
        "webhook_deliveries",
        ["status", "pk"],
        postgresql_where=UNSETTLED,
        sqlite_where=UNSETTLED,
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_unsettled", table_name="webhook_deliveries")
    op.create_index("ix_webhook_deliveries_status", "webhook_deliveries", ["status"])
