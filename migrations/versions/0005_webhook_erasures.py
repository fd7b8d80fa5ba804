"""Webhook erasures: what a platform erased stays erased, whatever arrives late.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhook_erasures",
        sa.Column("pk", PK, primary_key=True),
        sa.Column("record_source", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "record_source",
            "kind",
            "external_id",
            name="uq_webhook_erasures_record_source_kind_external_id",
        ),
    )


def downgrade() -> None:
    op.drop_table("webhook_erasures")
