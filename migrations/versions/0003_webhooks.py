"""Webhooks: senders, their secrets, and the raw deliveries.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
INSTANT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_sources",
        sa.Column("pk", PK, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("record_source", sa.String(255), nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.UniqueConstraint("kind", "name", name="uq_webhook_sources_kind_name"),
    )
    op.create_table(
        "webhook_secrets",
        sa.Column("pk", PK, primary_key=True),
        sa.Column(
            "source_pk",
            sa.BigInteger(),
            sa.ForeignKey(
                "webhook_sources.pk",
                ondelete="CASCADE",
                name="fk_webhook_secrets_source_pk_webhook_sources",
            ),
            nullable=False,
        ),
        sa.Column("secret", sa.String(512), nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("expires_at", INSTANT),
    )
    op.create_index("ix_webhook_secrets_source_pk", "webhook_secrets", ["source_pk"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("pk", PK, primary_key=True),
        sa.Column(
            "source_pk",
            sa.BigInteger(),
            sa.ForeignKey(
                "webhook_sources.pk",
                ondelete="CASCADE",
                name="fk_webhook_deliveries_source_pk_webhook_sources",
            ),
            nullable=False,
        ),
        sa.Column("delivery_key", sa.String(255), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("received_at", INSTANT, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("processed_at", INSTANT),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint(
            "source_pk", "delivery_key", name="uq_webhook_deliveries_source_pk_delivery_key"
        ),
    )
    op.create_index("ix_webhook_deliveries_status", "webhook_deliveries", ["status"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_secrets")
    op.drop_table("webhook_sources")
