"""Initial schema: customers, orders, acquisition spend and API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
INSTANT = sa.DateTime(timezone=True)
COUNTED = sa.text("status = 'completed' AND NOT test")
# Names are given in full; op.f() stops the naming convention adding its prefix again.


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("pk", PK, primary_key=True),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("created_at", INSTANT),
        sa.Column("acquisition_channel", sa.String(255), nullable=False),
        sa.Column("country", sa.String(2)),
        sa.Column("attributes", sa.JSON(), nullable=False, server_default="{}"),
        sa.Column("updated_at", INSTANT),
        sa.Column("stub", sa.Boolean(), nullable=False),
        sa.Column("ingested_at", INSTANT, nullable=False),
        sa.UniqueConstraint("source", "external_id", name="uq_customers_source_external_id"),
    )
    op.create_index("ix_customers_acquisition_channel", "customers", ["acquisition_channel"])
    op.create_index("ix_customers_country", "customers", ["country"])

    op.create_table(
        "orders",
        sa.Column("pk", PK, primary_key=True),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column(
            "customer_pk",
            sa.BigInteger(),
            sa.ForeignKey(
                "customers.pk", ondelete="CASCADE", name="fk_orders_customer_pk_customers"
            ),
            nullable=False,
        ),
        sa.Column("placed_at", INSTANT, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("test", sa.Boolean(), nullable=False),
        sa.Column("updated_at", INSTANT),
        sa.Column("ingested_at", INSTANT, nullable=False),
        sa.UniqueConstraint("source", "external_id", name="uq_orders_source_external_id"),
        sa.CheckConstraint("total_minor >= 0", name=op.f("ck_orders_total_not_negative")),
        sa.CheckConstraint(
            "refunded_minor >= 0 AND refunded_minor <= total_minor",
            name=op.f("ck_orders_refunded_within_total"),
        ),
        sa.CheckConstraint(
            "status IN ('completed', 'pending', 'refunded', 'cancelled')",
            name=op.f("ck_orders_known_status"),
        ),
    )
    op.create_index("ix_orders_customer_pk_placed_at", "orders", ["customer_pk", "placed_at"])
    op.create_index(
        "ix_orders_counted_placed_at",
        "orders",
        ["placed_at"],
        postgresql_where=COUNTED,
        sqlite_where=COUNTED,
    )

    op.create_table(
        "acquisition_spend",
        sa.Column("pk", PK, primary_key=True),
        sa.Column("external_id", sa.String(255)),
        sa.Column("channel", sa.String(255), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("ingested_at", INSTANT, nullable=False),
        sa.UniqueConstraint("external_id", name="uq_acquisition_spend_external_id"),
        sa.CheckConstraint(
            "amount_minor >= 0", name=op.f("ck_acquisition_spend_amount_not_negative")
        ),
        sa.CheckConstraint(
            "end_date >= start_date", name=op.f("ck_acquisition_spend_dates_in_order")
        ),
    )
    op.create_index(
        "ix_acquisition_spend_start_date_end_date", "acquisition_spend", ["start_date", "end_date"]
    )
    op.create_index("ix_acquisition_spend_channel", "acquisition_spend", ["channel"])

    op.create_table(
        "api_keys",
        sa.Column("pk", PK, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.String(64), nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("revoked_at", INSTANT),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("acquisition_spend")
    op.drop_table("orders")
    op.drop_table("customers")
