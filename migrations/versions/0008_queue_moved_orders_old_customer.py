"""The database queues the former customer and time of an order that moves.

Writers queue the customers whose purchase histories they change
(stale_purchase_histories) and log the times whose metrics change (data_changes);
for an order moved to another customer or time that includes the customer and
time it left, which the writer learns by reading the stored row first. A row
committed by another transaction after that read is still updated (ON CONFLICT
DO UPDATE takes the latest version): its former customer went unqueued, keeping
the moved order as a neighbour for good, and cached reports of its former time
kept counting it. A trigger sees every move as it is written, whoever writes
it, and queues the former customer with the former time (`changed_at`), which
the refresh logs as changed.

On SQLite, a later `batch_alter_table("orders")` rebuilds the table without its
triggers: such a migration must create this one again.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGER = "orders_moved_queue_former_customer"
QUEUE = (
    "INSERT INTO stale_purchase_histories (customer_pk, changed_at)"
    " VALUES (OLD.customer_pk, OLD.placed_at);"
)


def upgrade() -> None:
    op.add_column(
        "stale_purchase_histories",
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
    )
    if _postgresql():
        op.execute(
            f"""
            CREATE FUNCTION queue_former_customer() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {QUEUE}
                RETURN NULL;
            END $$
            """
        )
        op.execute(
            f"""
            CREATE TRIGGER {TRIGGER} AFTER UPDATE OF customer_pk, placed_at ON orders
            FOR EACH ROW WHEN (OLD.customer_pk IS DISTINCT FROM NEW.customer_pk
                               OR OLD.placed_at IS DISTINCT FROM NEW.placed_at)
            EXECUTE FUNCTION queue_former_customer()
            """
        )
    else:
        op.execute(
            f"""
            CREATE TRIGGER {TRIGGER} AFTER UPDATE OF customer_pk, placed_at ON orders
            FOR EACH ROW WHEN OLD.customer_pk IS NOT NEW.customer_pk
                           OR OLD.placed_at IS NOT NEW.placed_at
            BEGIN {QUEUE} END
            """
        )


def downgrade() -> None:
    op.execute(f"DROP TRIGGER {TRIGGER}" + (" ON orders" if _postgresql() else ""))
    if _postgresql():
        op.execute("DROP FUNCTION queue_former_customer()")
    with op.batch_alter_table("stale_purchase_histories") as table:
        table.drop_column("changed_at")


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"
