"""`customer-metrics secrets-key`: a new key for SECRETS_KEY."""

from __future__ import annotations

import click

from service.secret_box import new_key


@click.command(name="secrets-key")
def secrets_key() -> None:
    """Print a new random key for SECRETS_KEY (what encrypts webhook secrets at rest).

    To rotate: put the new key first (SECRETS_KEY=new,old), restart, run
    `customer-metrics webhooks reencrypt`, then drop the old key.
    """
    click.echo(new_key())
