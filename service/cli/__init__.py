"""The `customer-metrics` command: serve, migrate, manage keys, import CSV files."""

from __future__ import annotations

import click
from flask.cli import FlaskGroup
from sqlalchemy.exc import DBAPIError

from service.cli.db import db
from service.cli.imports import import_command
from service.cli.keys import keys
from service.cli.metrics import metrics
from service.cli.openapi import openapi
from service.cli.serve import serve
from service.cli.webhooks import webhooks


def _create_app() -> object:
    from service import create_command_app

    return create_command_app()


@click.group(
    cls=FlaskGroup, create_app=_create_app, add_default_commands=False, add_version_option=False
)
def cli() -> None:
    """customer-metrics: ingest a shop's orders and answer customer metrics.

    Configuration comes from the environment (DATABASE_URL, REPORTING_CURRENCY, ...);
    see the README.
    """


for command in (db, keys, import_command, metrics, openapi, serve, webhooks):
    cli.add_command(command)


def main() -> None:
    try:
        cli()
    except DBAPIError as error:
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
