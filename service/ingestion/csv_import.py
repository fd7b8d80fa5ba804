"""Streaming a CSV file through the same validation and upsert rules as the REST batches.

Unlike a REST batch, an import is not all-or-nothing: every good row is stored
and bad rows are reported by line number. Orders on PostgreSQL are staged and
merged when the file ends (order_file.py); everything else is stored batch by
batch, each batch in its own transaction, while the file is read.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from service.db import Database
from service.ingestion.batch import RecordKind, parse_record
from service.ingestion.bulk_orders import ImportFailed
from service.ingestion.order_file import OrderFileLoad
from service.ingestion.order_lines import PlainOrderRows, record_line
from service.ingestion.outcome import BatchOutcome
from service.ingestion.records import (
    CUSTOMER_FIELDS,
    ORDER_FIELDS,
    SPEND_FIELDS,
    RecordInvalid,
    RecordParser,
)

COLUMNS = {"customers": CUSTOMER_FIELDS, "orders": ORDER_FIELDS, "spend": SPEND_FIELDS}
# Columns holding JSON text, because a CSV cell cannot hold an object.
JSON_COLUMNS = frozenset({"attributes"})


class CsvHeaderError(ValueError):
    """The file's header names no usable columns, or columns we do not know."""


@dataclass
class ImportReport:
    rows: int = 0
    outcome: BatchOutcome = field(default_factory=BatchOutcome)
    # One entry per bad field: {"line", "id", "field", "message"}.
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rejected_rows(self) -> int:
        return len({e["line"] for e in self.errors})


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
    service/ingestion/bulk_orders.py; `on_storing` is told how many); everything
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
    with _WriterLanes(database, kind, lanes, batch_size) as writers:
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
    """Stage every good row while reading, then merge them (service/ingestion/order_file.py).

    Plain rows go straight to their staged line; the others through the record
    parser, which reports the bad ones (service/ingestion/order_lines.py).
    """
    report = ImportReport()
    rows = _CsvRows(kind, stream)
    plain = PlainOrderRows(rows.header, parser.currency, parser.exponent)
    to_raw = _RawRecords(rows.header)
    try:
        with OrderFileLoad(database) as load:
            for number, (line, row) in enumerate(rows, 1):
                staged = plain(row, number)
                if staged is None:
                    raw = to_raw(row)
                    try:
                        staged = record_line(parse_record(kind, parser, raw), number)
                    except RecordInvalid as invalid:
                        report.errors.extend(_line_errors(line, raw.get("id"), invalid))
                        staged = None
                if staged is not None:
                    load.add(staged)
                if number % batch_size == 0:
                    on_progress(batch_size)
            report.rows = rows.count
            if rows.count % batch_size:
                on_progress(rows.count % batch_size)
            on_storing(load.rows)
            report.outcome = load.store(datetime.now(UTC))
    except ImportFailed as failed:
        report.rows = rows.count
        failed.report = report  # the bad rows found are still worth telling
        raise
    return report


class _WriterLanes:
    """Stores batches on parallel connections while keeping each record's file order.

    A record always goes to the lane its key hashes to, and a lane has at most one
    batch in flight, so two versions of one record in a file are stored in the
    file's order, as a single writer would. Each batch is its own transaction.
    """

    def __init__(self, database: Database, kind: RecordKind, lanes: int, batch_size: int):
        self.database, self.kind, self.batch_size = database, kind, batch_size
        self.pool = ThreadPoolExecutor(lanes, thread_name_prefix="import-writer")
        self.pending: list[list[Any]] = [[] for _ in range(lanes)]
        self.in_flight: list[Future[BatchOutcome] | None] = [None] * lanes
        self.outcome = BatchOutcome()
        self._unkeyed = 0

    def add(self, record: Any) -> None:
        lane = self._lane(record)
        self.pending[lane].append(record)
        if len(self.pending[lane]) >= self.batch_size:
            self._submit(lane)

    def _lane(self, record: Any) -> int:
        if record.id is None:  # spend without an id: any lane will do
            self._unkeyed += 1
            return self._unkeyed % len(self.pending)
        return hash((getattr(record, "source", ""), record.id)) % len(self.pending)

    def _submit(self, lane: int) -> None:
        self._wait(lane)
        batch, self.pending[lane] = self.pending[lane], []
        self.in_flight[lane] = self.pool.submit(self._store, batch)

    def _wait(self, lane: int) -> None:
        future, self.in_flight[lane] = self.in_flight[lane], None
        if future is not None:
            self.outcome.add(future.result())

    def _store(self, batch: list[Any]) -> BatchOutcome:
        with self.database.transaction() as session:
            return self.kind.store(session, batch, datetime.now(UTC))

    def __enter__(self) -> _WriterLanes:
        return self

    def __exit__(self, error_type: object, *_: object) -> None:
        try:
            if error_type is None:
                for lane, pending in enumerate(self.pending):
                    if pending:
                        self._submit(lane)
                for lane in range(len(self.in_flight)):
                    self._wait(lane)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _batches(
    kind: RecordKind, parser: RecordParser, stream: TextIO, batch_size: int
) -> Iterator[tuple[list[Any], list[dict[str, Any]], int]]:
    rows = _CsvRows(kind, stream)
    to_raw = _RawRecords(rows.header)
    batch: list[Any] = []
    errors: list[dict[str, Any]] = []
    rows_read = 0
    for line, row in rows:
        rows_read += 1
        raw = to_raw(row)
        try:
            batch.append(parse_record(kind, parser, raw))
        except RecordInvalid as invalid:
            errors.extend(_line_errors(line, raw.get("id"), invalid))
        if rows_read == batch_size:
            yield batch, errors, rows_read
            batch, errors, rows_read = [], [], 0
    if rows_read:
        yield batch, errors, rows_read


class _CsvRows:
    """A file's rows after its checked header, each with the line it starts on."""

    def __init__(self, kind: RecordKind, stream: TextIO):
        self.reader = csv.reader(stream)
        header = next(self.reader, None)
        _check_header(kind, header)
        assert header is not None
        self.header: list[str] = header
        self.count = 0

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        reader = self.reader
        # A quoted cell may span lines: report a bad row at the line it starts on.
        first_line = reader.line_num + 1
        for row in reader:
            if row:  # a blank line is no row (as csv.DictReader has it)
                self.count += 1
                yield first_line, row
            first_line = reader.line_num + 1


class _RawRecords:
    """A row's cells as a raw record: empty cells are missing values, JSON columns are
    decoded, and cells beyond the header are kept for the error they are."""

    def __init__(self, header: list[str]):
        self.header = header
        self.json_columns = [name for name in header if name in JSON_COLUMNS]

    def __call__(self, row: list[str]) -> dict[str, Any]:
        # A short row's missing cells are missing values, as empty ones are.
        cells = zip(self.header, row, strict=False)
        raw: dict[str, Any] = {name: cell for name, cell in cells if cell}
        for name in self.json_columns:
            if name in raw:
                raw[name] = _json_cell(raw[name])
        if len(row) > len(self.header):
            raw["(extra cells)"] = row[len(self.header) :]
        return raw


def _json_cell(value: str) -> Any:
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return value  # the record parser reports it as not an object


def _line_errors(line: int, record_id: Any, invalid: RecordInvalid) -> list[dict[str, Any]]:
    return [
        {"line": line, "id": record_id or None, "field": e.field, "message": e.message}
        for e in invalid.errors
    ]


def _check_header(kind: RecordKind, header: Any) -> None:
    if not header:
        raise CsvHeaderError("the file is empty; the first line must name the columns")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise CsvHeaderError(f"column(s) {', '.join(map(repr, repeated))} appear more than once")
    known = COLUMNS[kind.name]
    unknown = [name for name in header if name not in known]
    if unknown:
        raise CsvHeaderError(
            f"unknown column(s) {', '.join(map(repr, unknown))}; "
            f"{kind.name} files may have: {', '.join(sorted(known))}"
        )
