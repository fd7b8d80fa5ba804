"""Streaming a CSV file through the same validation and upsert rules as the REST batches.

The import's entry (`import_csv`). Unlike a REST batch, an import is not
all-or-nothing: every good row is stored and bad rows are reported by line
number. Orders on PostgreSQL are staged and merged when the file ends
(order_lanes.py, staging.py); everything else is stored batch by batch, each
batch in its own transaction, while the file is read (batch_lanes.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from service.db import Database
from service.ingestion.batch import RecordKind, parse_record
from service.ingestion.bulk.batch_lanes import BatchLanes
from service.ingestion.bulk.copy_lines import PlainOrderRows, record_line
from service.ingestion.bulk.csv_rows import CsvRows, RawRecords, line_errors
from service.ingestion.bulk.order_lanes import OrderLanes
from service.ingestion.bulk.report import ImportFailed, ImportReport
from service.ingestion.records import RecordInvalid, RecordParser


def import_csv(
    database: Database,
    kind: RecordKind,
    parser: RecordParser,
    stream: TextIO,
    batch_size: int = 1000,
    on_progress: Callable[[int], None] = lambda rows: None,
    on_storing: Callable[[int], None] = lambda rows: None,
) -> ImportReport:
    """Validate every row, store the good ones, report the bad ones.

    Orders on PostgreSQL are stored all at once at the end of the file (see
    service/ingestion/bulk/staging.py; `on_storing` is told how many); everything
    else batch by batch as the file is read.
    """
    if kind.name == "orders" and database.engine.dialect.name == "postgresql":
        return _import_orders_at_once(
            database, kind, parser, stream, batch_size, on_progress, on_storing
        )
    report = ImportReport()
    # Writers store batches while this thread parses the next ones. On PostgreSQL
    # two writers overlap one's Python work with the other's database work (customers
    # and spend files share no rows between batches of different ids). SQLite has a
    # single writer anyway.
    lanes = 2 if database.engine.dialect.name == "postgresql" else 1
    with BatchLanes(database, kind, lanes, batch_size) as writers:
        for batch, errors, rows_read in _batches(kind, parser, stream, batch_size):
            report.errors.extend(errors)
            report.rows += rows_read
            for record in batch:
                writers.add(record)
            on_progress(rows_read)
    report.outcome = writers.outcome
    return report


def _import_orders_at_once(
    database: Database,
    kind: RecordKind,
    parser: RecordParser,
    stream: TextIO,
    batch_size: int,
    on_progress: Callable[[int], None],
    on_storing: Callable[[int], None],
) -> ImportReport:
    """Stage every good row while reading, then merge them (service/ingestion/bulk/order_lanes.py).

    Plain rows go straight to their COPY line; the others through the record
    parser, which reports the bad ones (service/ingestion/bulk/copy_lines.py).
    """
    report = ImportReport()
    rows = CsvRows(kind, stream)
    plain = PlainOrderRows(rows.header, parser.currency, parser.exponent)
    to_raw = RawRecords(rows.header)
    try:
        with OrderLanes(database) as lanes:
            for number, (line, row) in enumerate(rows, 1):
                staged = plain(row, number)
                if staged is None:
                    raw = to_raw(row)
                    try:
                        staged = record_line(parse_record(kind, parser, raw), number)
                    except RecordInvalid as invalid:
                        report.errors.extend(line_errors(line, raw.get("id"), invalid))
                        staged = None
                if staged is not None:
                    lanes.add(staged)
                if number % batch_size == 0:
                    on_progress(batch_size)
            report.rows = rows.count
            if rows.count % batch_size:
                on_progress(rows.count % batch_size)
            on_storing(lanes.rows)
            report.outcome = lanes.store(datetime.now(UTC))
    except ImportFailed as failed:
        report.rows = rows.count
        failed.report = report  # the bad rows found are still worth telling
        raise
    return report


def _batches(
    kind: RecordKind, parser: RecordParser, stream: TextIO, batch_size: int
) -> Iterator[tuple[list[Any], list[dict[str, Any]], int]]:
    """The file's records in batches, with each batch's bad rows and how many rows it read."""
    rows = CsvRows(kind, stream)
    to_raw = RawRecords(rows.header)
    batch: list[Any] = []
    errors: list[dict[str, Any]] = []
    rows_read = 0
    for line, row in rows:
        rows_read += 1
        raw = to_raw(row)
        try:
            batch.append(parse_record(kind, parser, raw))
        except RecordInvalid as invalid:
            errors.extend(line_errors(line, raw.get("id"), invalid))
        if rows_read == batch_size:
            yield batch, errors, rows_read
            batch, errors, rows_read = [], [], 0
    if rows_read:
        yield batch, errors, rows_read
