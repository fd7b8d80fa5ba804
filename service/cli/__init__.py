"""The `customer-metrics` command: serve, migrate, manage keys, import CSV files."""

from __future__ import annotations

import click
import psycopg
from flask.cli import FlaskGroup
from sqlalchemy.exc import DBAPIError

from service.cli.db import db
from service.cli.db import upgrade as db_upgrade
from service.cli.imports import import_command
from service.cli.keys import keys
from service.cli.metrics import metrics
from service.cli.openapi import openapi
from service.cli.prune import prune_command
from service.cli.secrets_key import secrets_key
from service.cli.serve import serve
from service.cli.webhooks import webhooks
from service.cli.worker import worker
from service.transient import error_line, is_transient


def _create_app() -> object:
    from service.app import create_command_app
    from service.cli.database_choice import check_database
    from service.config import Settings

    settings = Settings.from_env()
    context = click.get_current_context()
    # The top-level group loads the app only to list commands (--help): no check for that.
    if context.parent is not None:
        may_create = context.command in _CREATE_THE_DATABASE
        check_database(settings.database_url, may_create=may_create)
    return create_command_app(settings)


@click.group(
    cls=FlaskGroup, create_app=_create_app, add_default_commands=False, add_version_option=False
)
def cli() -> None:
    """customer-metrics: ingest a shop's orders and answer customer metrics.

    Configuration comes from the environment (DATABASE_URL, REPORTING_CURRENCY, ...);
    see the README.
    """


for command in (
    db,
    keys,
    import_command,
    metrics,
    openapi,
    prune_command,
    secrets_key,
    serve,
    webhooks,
    worker,
):
    cli.add_command(command)

# The commands that may make a new SQLite file; the others refuse (cli/database_choice.py).
_CREATE_THE_DATABASE = (serve, db_upgrade)


def main(args: list[str] | None = None) -> None:
    """The command line (`args`, else the process's own arguments)."""
    from service.secret_box import SecretsKeyInvalid
    from service.webhooks.stored_secrets import SecretsRefused

    try:
        cli(args=args, prog_name="customer-metrics")
    except (SecretsKeyInvalid, SecretsRefused) as refused:
        raise SystemExit(f"customer-metrics: {refused}") from None
    except (DBAPIError, psycopg.Error) as error:
        if is_transient(error):  # down, restarting, full: the operator's to wait out
            raise SystemExit(
                f"customer-metrics: the database is unavailable ({error_line(error)}); try again"
            ) from error
        # After an upgrade of the code, before `db upgrade`: say so, not a traceback.
        if _schema_is_behind():
            raise SystemExit(
                "customer-metrics: the database's schema is older than this version "
                "expects; run `customer-metrics db upgrade` first"
            ) from error
        raise


def _schema_is_behind() -> bool:
    from service.config import Settings
    from service.db import make_engine
    from service.migrate import is_at_head

    try:
        engine = make_engine(Settings.from_env().database_url)
        try:
            return not is_at_head(engine)
        finally:
            engine.dispose()
    except Exception:  # the database cannot tell: the original error stands
        return False
