"""Index only the deliveries still to settle (received or failed), not every delivery;
compress delivery bodies with LZ4 on PostgreSQL.

Almost every stored delivery ends `processed`: an index over all their statuses
grows with the table and takes an entry on every status change, while the mapper
and `webhooks deliveries --status failed` only ever look for the few unsettled.

A ~2 KB delivery body is compressed as it is stored, while the sender waits: LZ4
took a quarter less PostgreSQL CPU per stored delivery than the default pglz
(0.25 against 0.33 ms). Only where the server was built with LZ4.

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
    if _postgres_has_lz4():
        op.execute("ALTER TABLE webhook_deliveries ALTER COLUMN body SET COMPRESSION lz4")
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
    if _postgres_has_lz4():
        op.execute("ALTER TABLE webhook_deliveries ALTER COLUMN body SET COMPRESSION default")


def _postgres_has_lz4() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    return bool(
        bind.scalar(
            sa.text(
                "SELECT 'lz4' = ANY(enumvals) FROM pg_settings"
                " WHERE name = 'default_toast_compression'"
            )
        )
    )
