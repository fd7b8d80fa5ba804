"""`customer-metrics db ...`: schema migrations."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from service import migrate
from service.extensions import database


@click.group()
def db() -> None:
    """Create and migrate the database schema."""


@db.command()
@click.argument("revision", default="head")
@with_appcontext
def upgrade(revision: str) -> None:
    """Migrate the database up to REVISION (default: the newest)."""
    migrate.upgrade(database().engine, revision)
    click.echo(f"database at {revision}")


@db.command()
@click.argument("revision")
@with_appcontext
def downgrade(revision: str) -> None:
    """Migrate the database down to REVISION ('base' drops everything)."""
    migrate.downgrade(database().engine, revision)
    click.echo(f"database at {revision}")


@db.command()
@with_appcontext
def status() -> None:
    """Say whether the schema is at the newest migration."""
    at_head = migrate.is_at_head(database().engine)
    click.echo("up to date" if at_head else "needs `customer-metrics db upgrade`")
    raise SystemExit(0 if at_head else 1)
