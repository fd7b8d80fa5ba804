"""A batch of raw records: validated whole, then stored whole (or not at all)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.errors import ForeignKeyViolation
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db import Database
from service.failures import Conflict, InvalidInput
from service.ingestion.customers import upsert_customers
from service.ingestion.orders import prepare_customers, upsert_orders
from service.ingestion.outcome import BatchOutcome
from service.ingestion.records import FieldError, RecordInvalid, RecordParser
from service.ingestion.spend import upsert_spend
from service.transient import driver_error, is_worth_retrying, retrying


@dataclass(frozen=True)
class RecordKind:
    """One kind of ingested record: how to parse a raw one and how to store many."""

    name: str
    parse: Callable[[RecordParser, Mapping[str, Any]], Any]
    store: Callable[..., BatchOutcome]  # (session, records, now[, what prepare returned])
    # Rows other records depend on, created before records are stored in parallel;
    # what it returns (their keys) is handed to `store`.
    prepare: Callable[[Session, Sequence[Any], datetime], Any] | None = None


KINDS = {
    "customers": RecordKind("customers", RecordParser.customer, upsert_customers),
    "orders": RecordKind("orders", RecordParser.order, upsert_orders, prepare_customers),
    "spend": RecordKind("spend", RecordParser.spend, upsert_spend),
}


class BatchRejected(InvalidInput):
    """At least one record of a batch is invalid; nothing of the batch was stored."""


class CustomerErasedMeanwhile(Conflict):
    """Customers of the batch kept being erased while it was stored; nothing was stored."""


def parse_record(kind: RecordKind, parser: RecordParser, raw: Any) -> Any:
    """One record, or RecordInvalid; a non-object is reported like any other field error."""
    if not isinstance(raw, Mapping):
        raise RecordInvalid([FieldError("(record)", "must be a JSON object")])
    return kind.parse(parser, raw)


def parse_batch(
    kind: RecordKind, parser: RecordParser, items: Sequence[Any]
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Parse every item; return the records and one error entry per bad field."""
    records: list[Any] = []
    errors: list[dict[str, Any]] = []
    for index, raw in enumerate(items):
        try:
            records.append(parse_record(kind, parser, raw))
        except RecordInvalid as invalid:
            record_id = raw.get("id") if isinstance(raw, Mapping) else None
            for error in invalid.errors:
                errors.append(
                    {
                        "index": index,
                        "id": None if record_id is None else str(record_id),
                        "field": error.field,
                        "message": error.message,
                    }
                )
    return records, errors


def validated_batch(kind: RecordKind, parser: RecordParser, items: Sequence[Any]) -> list[Any]:
    """Every item parsed into a record, or BatchRejected listing every problem."""
    records, errors = parse_batch(kind, parser, items)
    if errors:
        bad = len({e["index"] for e in errors})
        raise BatchRejected(
            f"{bad} of {len(items)} {kind.name} records are invalid; nothing was stored.",
            errors=errors,
        )
    return records


def ingest_batch(
    database: Database, kind: RecordKind, parser: RecordParser, items: Sequence[Any], now: datetime
) -> BatchOutcome:
    """Validate every item, then store them all in one transaction.

    Rows the records depend on (stub customers for orders) are created first, in
    their own short transaction: concurrent batches naming the same new customers
    then never wait on each other's uncommitted inserts. Only a valid batch gets
    there, and a stub without orders counts nowhere.

    Both run again (a few times) when they lost a conflict with a concurrent
    writer, or met a customer erased meanwhile (service/transient.py).
    """
    records = validated_batch(kind, parser, items)
    try:
        return retrying(
            lambda: _store_batch(database, kind, records, now),
            retriable=lambda error: is_worth_retrying(error) or _is_erased_customer(error),
            what=f"a batch of {kind.name}",
        )
    except IntegrityError as error:
        if _is_erased_customer(error):
            raise CustomerErasedMeanwhile(
                "A customer these records name was erased while the batch was stored, "
                "again on every retry; nothing was stored. Send the batch again."
            ) from None
        raise


def _store_batch(
    database: Database, kind: RecordKind, records: Sequence[Any], now: datetime
) -> BatchOutcome:
    if kind.prepare is None:
        with database.transaction() as session:
            return kind.store(session, records, now)
    with database.transaction() as session:
        prepared = kind.prepare(session, records, now)
    with database.transaction() as session:
        return kind.store(session, records, now, prepared)


def _is_erased_customer(error: BaseException) -> bool:
    """A foreign key refused the batch: a customer `prepare` found was erased since.

    Run again, `prepare` makes that customer anew (a stub), as if the erasure had
    come first; the batch had stored nothing.
    """
    orig = driver_error(error)
    if isinstance(orig, ForeignKeyViolation):
        return True
    return isinstance(orig, sqlite3.IntegrityError) and "FOREIGN KEY" in str(orig)
