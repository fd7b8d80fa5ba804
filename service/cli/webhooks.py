"""`customer-metrics webhooks ...`: senders, their secrets, stored deliveries and replays."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import click
from flask.cli import with_appcontext
from sqlalchemy import func, select

from service.background.process import run_in_this_process
from service.extensions import database, record_parser, secret_box
from service.models import (
    DELIVERY_STATUSES,
    WEBHOOK_KINDS,
    WebhookDelivery,
    WebhookSecret,
    WebhookSource,
)
from service.secret_box import MAKE_A_KEY, SecretBox
from service.webhooks.mapping import map_all_received, replay_delivery
from service.webhooks.sources import (
    add_source,
    find_source,
    new_secret,
    remove_source,
    rotate_secret,
)
from service.webhooks.stored_secrets import check_stored_secrets, reencrypt_secrets

KIND = click.Choice(WEBHOOK_KINDS)


@click.group()
def webhooks() -> None:
    """Configure webhook senders; list and replay their deliveries."""


@webhooks.command()
@click.argument("kind", type=KIND)
@click.argument("name")
@click.option(
    "--secret",
    help="The sender's secret (Shopify: the app's client secret). Default: a new random one.",
)
@with_appcontext
def add(kind: str, name: str, secret: str | None) -> None:
    """Add a sender: NAME is the shop domain (shopify), the site host (woocommerce) or any name."""
    box = _required_box()
    secret = secret or new_secret(kind)
    name = name.lower() if kind != "standard" else name
    with database().transaction() as session:
        check_stored_secrets(session, box)
        if find_source(session, kind, name) is not None:
            raise click.UsageError(f"{kind} sender {name!r} exists; use `webhooks rotate`.")
        source = add_source(session, kind, name, secret, box, datetime.now(UTC))
        record_source = source.record_source
    click.echo(f"added {kind} sender {name!r}; its records get source {record_source!r}")
    click.echo(f"secret: {secret}")
    click.echo(f"endpoint: POST /v1/webhooks/{kind}")


@webhooks.command(name="list")
@with_appcontext
def list_senders() -> None:
    """List senders with their number of valid secrets and deliveries."""
    now = datetime.now(UTC)
    with database().sessions() as session:
        for source in session.scalars(select(WebhookSource).order_by(WebhookSource.pk)):
            valid = session.scalar(
                select(func.count())
                .select_from(WebhookSecret)
                .where(WebhookSecret.source_pk == source.pk)
                .where((WebhookSecret.expires_at.is_(None)) | (WebhookSecret.expires_at > now))
            )
            delivered = session.scalar(
                select(func.count())
                .select_from(WebhookDelivery)
                .where(WebhookDelivery.source_pk == source.pk)
            )
            click.echo(
                f"{source.kind:12} {source.name:40} source={source.record_source} "
                f"secrets={valid} deliveries={delivered}"
            )


@webhooks.command()
@click.argument("kind", type=KIND)
@click.argument("name")
@click.option("--secret", help="The new secret. Default: a new random one.")
@click.option(
    "--grace-hours",
    type=float,
    default=24.0,
    show_default=True,
    help="How long the old secrets stay valid.",
)
@with_appcontext
def rotate(kind: str, name: str, secret: str | None, grace_hours: float) -> None:
    """Add a new secret; the old ones stay valid for the grace period (both verify meanwhile)."""
    box = _required_box()
    secret = secret or new_secret(kind)
    with database().transaction() as session:
        check_stored_secrets(session, box)
        source = _source(session, kind, name)
        grace = timedelta(hours=grace_hours)
        rotate_secret(session, source, secret, box, grace, datetime.now(UTC))
    click.echo(f"secret: {secret}")
    click.echo(f"older secrets of {kind} sender {name!r} expire in {grace_hours:g} h")


@webhooks.command()
@with_appcontext
def reencrypt() -> None:
    """Encrypt every stored secret again with the first key of SECRETS_KEY.

    Run after putting a new key first (SECRETS_KEY=new,old); then the old key can go.
    """
    with database().transaction() as session:
        count = reencrypt_secrets(session, _required_box())
    click.echo(f"re-encrypted {count} webhook secret(s) with the first key of SECRETS_KEY")


@webhooks.command()
@click.argument("kind", type=KIND)
@click.argument("name")
@with_appcontext
def remove(kind: str, name: str) -> None:
    """Remove a sender, its secrets and its stored deliveries (not the records they created)."""
    with database().transaction() as session:
        remove_source(session, _source(session, kind, name))
    click.echo(f"removed {kind} sender {name!r}")


@webhooks.command()
@click.option(
    "--status", type=click.Choice(DELIVERY_STATUSES), help="Only deliveries in this state."
)
@click.option("--limit", type=int, default=50, show_default=True)
@with_appcontext
def deliveries(status: str | None, limit: int) -> None:
    """List stored deliveries, newest first, with the error of failed ones."""
    query = select(WebhookDelivery, WebhookSource.kind, WebhookSource.name).join(
        WebhookSource, WebhookSource.pk == WebhookDelivery.source_pk
    )
    if status:
        query = query.where(WebhookDelivery.status == status)
    with database().sessions() as session:
        rows = session.execute(query.order_by(WebhookDelivery.pk.desc()).limit(limit)).all()
    for delivery, kind, name in rows:
        click.echo(
            f"{delivery.pk:8} {delivery.received_at:%Y-%m-%d %H:%M:%S} {kind}:{name} "
            f"{delivery.topic} {delivery.status}"
            + (f": {delivery.error}" if delivery.error else "")
        )


@webhooks.command()
@click.argument("delivery_ids", nargs=-1, type=int)
@click.option("--failed", "all_failed", is_flag=True, help="Replay every failed delivery.")
@with_appcontext
def replay(delivery_ids: tuple[int, ...], all_failed: bool) -> None:
    """Map stored deliveries into records again (after a fix, or a configuration change)."""
    ids = list(delivery_ids)
    if all_failed:
        with database().sessions() as session:
            ids += session.scalars(
                select(WebhookDelivery.pk)
                .where(WebhookDelivery.status.in_(("failed", "received")))
                .order_by(WebhookDelivery.pk)
            ).all()
    if not ids:
        raise click.UsageError("Name delivery ids, or give --failed.")
    still_failing = 0
    for delivery_id in ids:
        outcome = replay_delivery(database(), delivery_id, record_parser(), datetime.now(UTC))
        still_failing += outcome.status == "failed"
        detail = f": {outcome.detail}" if outcome.detail else ""
        click.echo(f"{delivery_id}: {outcome.status}{detail}")
    if still_failing:
        raise SystemExit(1)


@webhooks.command(name="map")
@click.option("--follow", is_flag=True, help="Keep mapping new deliveries until stopped.")
@click.option("--nice", type=int, default=0, help="Lower this process's priority by N.")
@with_appcontext
def map_deliveries(follow: bool, nice: int) -> None:
    """Map received deliveries into records.

    With --follow it is `customer-metrics worker` (it does all background work):
    it looks every second, rides out a database restart, and stops when the
    process that started it does.
    """
    if follow:
        run_in_this_process(nice)
        return
    if nice:
        os.nice(nice)
    counts = map_all_received(database(), record_parser())
    if counts is None:
        click.echo("another mapper is at work", err=True)
    else:
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        click.echo(f"mapped: {summary or 'nothing was waiting'}")


def _required_box() -> SecretBox:
    box = secret_box()
    if box is None:
        raise click.ClickException(
            "SECRETS_KEY is not set: webhook secrets are stored encrypted with it; "
            f"{MAKE_A_KEY} and export SECRETS_KEY=<that key>."
        )
    return box


def _source(session: object, kind: str, name: str) -> WebhookSource:
    source = find_source(session, kind, name if kind == "standard" else name.lower())  # type: ignore[arg-type]
    if source is None:
        raise click.UsageError(f"No {kind} sender named {name!r}; see `webhooks list`.")
    return source
