"""Webhook secrets encrypted at rest: a column says whether a stored secret is encrypted.

The migration itself needs no key: the secrets stored before it are marked clear
(`encrypted` false), and the first start with SECRETS_KEY set (`serve`, the app,
or `customer-metrics webhooks reencrypt`) encrypts them; without the key the
service refuses to start while any secret is stored. A Fernet token is longer
than the secret it holds, so the column becomes unbounded text.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_secrets") as table:
        table.add_column(
            sa.Column("encrypted", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        table.alter_column("secret", type_=sa.Text(), existing_type=sa.String(512))


def downgrade() -> None:
    # Encrypted secrets cannot go back to a schema that expects them clear.
    bind = op.get_bind()
    if bind.scalar(sa.text("SELECT count(*) FROM webhook_secrets WHERE encrypted")):
        raise RuntimeError(
            "webhook secrets are encrypted: downgrading would leave them unreadable; "
            "remove the senders or restore a backup from before 0010"
        )
    with op.batch_alter_table("webhook_secrets") as table:
        table.alter_column("secret", type_=sa.String(512), existing_type=sa.Text())
        table.drop_column("encrypted")
