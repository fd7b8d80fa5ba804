"""`customer-metrics prune`: delete settled deliveries and change-log entries past retention."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click
from flask.cli import with_appcontext

from service.extensions import database, settings
from service.retention import prune


@click.command(name="prune")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@with_appcontext
def prune_command(dry_run: bool) -> None:
    """Delete what RETENTION_DAYS no longer keeps (`customer-metrics worker` does it too).

    Mapped webhook deliveries older than the retention lose their body and headers
    (a tombstone stays for de-duplication until DEDUP_RETENTION_DAYS), change-log
    entries go; failed and unmapped deliveries stay until replayed.
    """
    started = time.monotonic()
    result = prune(database(), settings(), datetime.now(UTC), dry_run=dry_run)
    if result.cutoff is None:
        click.echo("RETENTION_DAYS=0: nothing is pruned")
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb}: {result.bodies} webhook delivery bodies (tombstones kept), "
        f"{result.tombstones} delivery tombstones, {result.changes} change-log entries, "
        f"{result.reports} stored reports (older than {result.cutoff:%Y-%m-%d %H:%M} UTC) "
        f"in {time.monotonic() - started:.1f} s"
    )
