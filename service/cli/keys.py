"""`customer-metrics keys ...`: API keys (shown once, stored hashed)."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from service.auth import create_key, revoke_key, set_rate_limit
from service.extensions import database, settings
from service.models import SCOPES, ApiKey
from service.rate_limits import MAX_RATE_LIMIT, effective_limit


class RateLimit(click.ParamType):
    """Requests a minute (1 to MAX_RATE_LIMIT), `unlimited` (0), or `default` (None)."""

    name = "N|unlimited|default"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> object:
        if value is None or isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text in ("unlimited", "default"):
            return 0 if text == "unlimited" else None
        if text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_RATE_LIMIT:
            return int(text)
        self.fail(
            f"{value!r} is not 1 to {MAX_RATE_LIMIT} requests a minute, 'unlimited' or 'default'",
            param,
            ctx,
        )


RATE_LIMIT_HELP = (
    "Requests a minute (a burst of up to N, then N a minute), 'unlimited', or 'default' "
    "(DEFAULT_RATE_LIMIT if set, else unlimited)."
)


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
@click.option("--rate-limit", type=RateLimit(), default="default", help=RATE_LIMIT_HELP)
@with_appcontext
def create(name: str, scopes: tuple[str, ...], rate_limit: int | None) -> None:
    """Create a key and print it. It is not stored and cannot be shown again."""
    with database().transaction() as session:
        record, key = create_key(session, name, scopes, datetime.now(UTC), rate_limit=rate_limit)
    limit = "" if rate_limit is None else f", {_limit_text(record)}"
    click.echo(
        f"created key {record.pk} ({record.scopes}{limit}); store it now, it is shown only once:"
    )
    click.echo(key)


@keys.command("list")
@with_appcontext
def list_keys() -> None:
    """List keys (never the keys themselves: only their first characters)."""
    with database().sessions() as session:
        rows = list(session.scalars(select(ApiKey).order_by(ApiKey.pk)))
    click.echo(
        f"{'id':>4}  {'prefix':<12} {'scopes':<20} {'rate-limit':<22} {'created':<20} "
        f"{'revoked':<20} name"
    )
    for row in rows:
        revoked = row.revoked_at.strftime("%Y-%m-%d %H:%M") if row.revoked_at else "-"
        created = row.created_at.strftime("%Y-%m-%d %H:%M")
        click.echo(
            f"{row.pk:>4}  {row.prefix + '…':<12} {row.scopes:<20} {_limit_text(row):<22} "
            f"{created:<20} "
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


@keys.command("rate-limit")
@click.argument("key_id")
@click.argument("limit", type=RateLimit())
@with_appcontext
def rate_limit(key_id: str, limit: int | None) -> None:
    """Set the rate limit of the key with this id (or listed prefix); it applies at once."""
    with database().transaction() as session:
        count = set_rate_limit(session, key_id.rstrip("…"), limit)
    if count == 0:
        raise click.ClickException(f"no active key {key_id!r}")
    click.echo(f"set the rate limit of {count} key(s)")


def _limit_text(key: ApiKey) -> str:
    """The key's limit as `keys list` shows it: `120/minute`, `unlimited`, `default (...)`."""
    limit = effective_limit(key, settings().default_rate_limit)
    text = "unlimited" if limit is None else f"{limit}/minute"
    return f"default ({text})" if key.rate_limit is None else text
