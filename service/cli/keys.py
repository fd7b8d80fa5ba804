"""`customer-metrics keys ...`: API keys (shown once, stored hashed)."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from service.auth import create_key, revoke_key
from service.extensions import database
from service.models import SCOPES, ApiKey


@click.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.option("--name", required=True, help="Who or what the key is for.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(SCOPES),
    default=("ingest", "read"),
    show_default=True,
    help="Repeat for several; 'admin' allows everything.",
)
@with_appcontext
def create(name: str, scopes: tuple[str, ...]) -> None:
    """Create a key and print it. It is not stored and cannot be shown again."""
    with database().transaction() as session:
        record, key = create_key(session, name, scopes, datetime.now(UTC))
    click.echo(f"created key {record.pk} ({record.scopes}); store it now, it is shown only once:")
    click.echo(key)


@keys.command("list")
@with_appcontext
def list_keys() -> None:
    """List keys (never the keys themselves: only their first characters)."""
    with database().sessions() as session:
        rows = list(session.scalars(select(ApiKey).order_by(ApiKey.pk)))
    click.echo(f"{'id':>4}  {'prefix':<12} {'scopes':<20} {'created':<20} {'revoked':<20} name")
    for row in rows:
        revoked = row.revoked_at.strftime("%Y-%m-%d %H:%M") if row.revoked_at else "-"
        created = row.created_at.strftime("%Y-%m-%d %H:%M")
        click.echo(
            f"{row.pk:>4}  {row.prefix + '…':<12} {row.scopes:<20} {created:<20} "
            f"{revoked:<20} {row.name}"
        )


@keys.command()
@click.argument("key_id")
@with_appcontext
def revoke(key_id: str) -> None:
    """Revoke the key with this id (or listed prefix); it stops working at once."""
    with database().transaction() as session:
        count = revoke_key(session, key_id.rstrip("…"), datetime.now(UTC))
    if count == 0:
        raise click.ClickException(f"no active key {key_id!r}")
    click.echo(f"revoked {count} key(s)")
