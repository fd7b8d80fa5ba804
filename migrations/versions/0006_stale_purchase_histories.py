"""Stale purchase histories: writers queue customers, metric reads refresh them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "stale_purchase_histories",
        sa.Column("pk", PK, primary_key=True),
        sa.Column("customer_pk", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("stale_purchase_histories")
