"""The database queues the former customer of an order moved to another customer.

Writers queue the customers whose purchase histories they change
(stale_purchase_histories); for an order moved to another customer that includes
the customer it left, which the writer learns by reading the stored row first.
A row committed by another transaction after that read is still updated (ON
CONFLICT DO UPDATE takes the latest version), and its former customer went
unqueued, keeping the moved order as a neighbour for good. A trigger sees every
move as it is written, whoever writes it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGER = "orders_moved_queue_former_customer"
QUEUE = "INSERT INTO stale_purchase_histories (customer_pk) VALUES (OLD.customer_pk);"


def upgrade() -> None:
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
            CREATE TRIGGER {TRIGGER} AFTER UPDATE OF customer_pk ON orders
            FOR EACH ROW WHEN (OLD.customer_pk IS DISTINCT FROM NEW.customer_pk)
            EXECUTE FUNCTION queue_former_customer()
            """
        )
    else:
        op.execute(
            f"""
            CREATE TRIGGER {TRIGGER} AFTER UPDATE OF customer_pk ON orders
            FOR EACH ROW WHEN OLD.customer_pk IS NOT NEW.customer_pk
            BEGIN {QUEUE} END
            """
        )


def downgrade() -> None:
    op.execute(f"DROP TRIGGER {TRIGGER}" + (" ON orders" if _postgresql() else ""))
    if _postgresql():
        op.execute("DROP FUNCTION queue_former_customer()")


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"
