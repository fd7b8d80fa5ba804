"""`customer-metrics serve`: migrate, make sure a key exists, run gunicorn."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from service import migrate
from service.auth import create_key, ensure_key
from service.extensions import database, secret_box, settings
from service.models import SCOPES, ApiKey
from service.webhooks.stored_secrets import check_stored_secrets


@click.command()
@click.option(
    "--bind",
    default=lambda: os.environ.get("BIND", "127.0.0.1:8000"),
    show_default="127.0.0.1:8000 or $BIND",
)
@click.option("--workers", type=int, default=None, help="Default: $WEB_CONCURRENCY or cores.")
@with_appcontext
def serve(bind: str, workers: int | None) -> None:
    """Migrate the database, print a key if none exists yet, and serve with gunicorn."""
    migrate.upgrade(database().engine)
    with database().transaction() as session:
        # Refused here, in one line, before gunicorn's workers would each fail to boot.
        check_stored_secrets(session, secret_box())
    _announce_key()
    env = dict(os.environ, BIND=bind)
    if workers:
        env["WEB_CONCURRENCY"] = str(workers)
    click.echo(f"serving on http://{bind}  (API docs: http://{bind}/docs)", err=True)
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:service.gunicorn_conf",
        "service.app:create_app()",
    ]
    os.execve(sys.executable, args, env)


def _announce_key() -> None:
    """A newcomer must not be stuck without a key: make one on first start."""
    now = datetime.now(UTC)
    with database().transaction() as session:
        bootstrap = settings().bootstrap_api_key
        if bootstrap:
            ensure_key(session, bootstrap, "bootstrap (BOOTSTRAP_API_KEY)", now)
            click.echo("API key: the value of BOOTSTRAP_API_KEY", err=True)
            return
        active = session.scalar(select(ApiKey.pk).where(ApiKey.revoked_at.is_(None)).limit(1))
        if active is not None:
            click.echo(
                "API keys exist; make another with `customer-metrics keys create`.", err=True
            )
            return
        _, key = create_key(session, "first key (created by serve)", SCOPES, now)
    click.echo(f"\nYour API key (all scopes; shown only this once):\n\n    {key}\n", err=True)
