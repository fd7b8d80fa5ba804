"""`customer-metrics import ...`: CSV files through the REST validation and upsert rules."""

from __future__ import annotations

import io
import os
import sys
import time
from typing import Any

import click
from flask.cli import with_appcontext

from service.cli.numbers import WholeNumberRange
from service.extensions import database, record_parser
from service.ingestion.batch import KINDS
from service.ingestion.bulk.csv_import import import_csv
from service.ingestion.bulk.csv_rows import CsvHeaderError
from service.ingestion.bulk.report import ImportFailed
from service.metrics import refresh_purchase_histories

MAX_ERRORS_SHOWN = 50


@click.command("import")
@click.argument("kind", type=click.Choice(sorted(KINDS)))
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--batch-size", default=1000, show_default=True, type=WholeNumberRange(1, 10000))
@with_appcontext
def import_command(kind: str, path: str, batch_size: int) -> None:
    """Import customers, orders or spend from a CSV file whose header uses the API's field names.

    Every good row is stored even when others are bad; bad rows are listed by
    line number and the command exits with status 1. Orders on PostgreSQL are
    stored when the file ends, everything else batch by batch as it is read.
    """
    with open(path, "rb") as raw, _progress_bar(os.path.getsize(path), kind) as bar:
        # utf-8-sig: spreadsheet programs often start the file with a byte-order mark.
        stream = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")

        def advance(_rows: int) -> None:
            bar.update(raw.tell() - bar.pos)

        def storing(rows: int) -> None:
            click.echo(f"\nstoring {rows} {kind} ...", err=True)

        try:
            report = import_csv(
                database(), KINDS[kind], record_parser(), stream, batch_size, advance, storing
            )
        except CsvHeaderError as exc:
            raise click.ClickException(f"{path}: {exc}") from None
        except ImportFailed as exc:
            if exc.report is not None:
                _print_errors(exc.report.errors)
            raise click.ClickException(f"{path}: {exc}") from None
    _print_errors(report.errors)
    outcome = report.outcome
    click.echo(
        f"{report.rows} rows read: {outcome.created} created, {outcome.updated} updated, "
        f"{outcome.unchanged} unchanged, {outcome.stale_ignored} stale ignored, "
        f"{report.rejected_rows} rejected"
    )
    # Paid here rather than by the first metrics request after a large import.
    started = time.perf_counter()
    refresh_purchase_histories(database())
    click.echo(f"purchase histories brought up to date in {time.perf_counter() - started:.1f} s")
    if report.errors:
        raise SystemExit(1)


def _print_errors(errors: list[dict[str, Any]]) -> None:
    for error in errors[:MAX_ERRORS_SHOWN]:
        record = f" (id {error['id']})" if error["id"] else ""
        click.echo(f"line {error['line']}{record}: {error['field']}: {error['message']}", err=True)
    if len(errors) > MAX_ERRORS_SHOWN:
        click.echo(f"... and {len(errors) - MAX_ERRORS_SHOWN} more problems", err=True)


def _progress_bar(size: int, kind: str) -> Any:
    """Progress by bytes read, on stderr so the summary on stdout stays clean."""
    return click.progressbar(length=size, label=f"importing {kind}", file=sys.stderr)
