"""Batches of a CSV file stored on parallel connections, each record's versions in file order.

The batch-by-batch path of the CSV import (csv_import.py): customers and spend
files, and every file on SQLite. Each batch is stored as a REST batch is
(`RecordKind.store`), in its own transaction, while the import reads on.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from service.db import Database
from service.ingestion.batch import RecordKind
from service.ingestion.outcome import BatchOutcome


class BatchLanes:
    """Stores batches on parallel connections while keeping each record's file order.

    A record always goes to the lane its key hashes to, and a lane has at most one
    batch in flight, so two versions of one record in a file are stored in the
    file's order, as a single writer would. Each batch is its own transaction.
    Use as a context manager: `add` every record, and the block's end stores the
    rest; `outcome` then counts what every batch did.
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

    def __enter__(self) -> BatchLanes:
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
