"""An orders file into PostgreSQL on parallel connections, one share of customers each.

The import (csv_import.py) hands each good row's COPY line (copy_lines.py) to
`OrderLanes`, which sends it to its lane. Each *lane* is a connection with its
own transaction, staging and merging the orders of the customers whose key
hashes to it (staging.OrderStaging). Its customers are its own, so lanes never
write the same customer, and a customer's orders all meet in one merge. The
merges run side by side, one per core, once the file has been read.

An order id the file gives under customers of two lanes must still apply in
file order: from the row where a second lane would get it, that id's rows go
to the *tail*, merged after the lanes have committed. Which lanes have had an
id is kept in a fixed table of hashes, so a collision may send a row to the
tail needlessly, which is only slower (its customers' histories are then
refreshed after the import).

So no two lanes write the same customer or order, and each commits on its own.
A lane can still deadlock with a concurrent writer (a REST batch taking the
same rows in another order); PostgreSQL then fails one of the two, and if it
is the lane, its merge (in a savepoint) runs again. Once committed, each lane
checks whether another writer added orders to its fresh customers meanwhile
(staging.py); should that check fail, the file is stored and the import
says what to run (HistoriesUnchecked).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime
from types import TracebackType
from typing import Any

import psycopg
from psycopg.errors import DeadlockDetected
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from service.db import Database
from service.ingestion.bulk.copy_lines import StagedLine
from service.ingestion.bulk.report import ImportFailed
from service.ingestion.bulk.staging import OrderStaging
from service.ingestion.outcome import BatchOutcome

log = logging.getLogger(__name__)

LANES = max(1, min(os.cpu_count() or 1, 4))
_ATTEMPTS = 5
# Per hash of an order id: a bit per lane that has had it, and _TAIL once it goes
# to the tail. 32 MiB: 200,000 ids send about 0.3 % of rows to the tail needlessly.
_ID_HASHES = 1 << 25
_TAIL = 0x80


class ImportIncomplete(ImportFailed):
    """Some lanes stored their orders and others could not."""


class HistoriesUnchecked(ImportFailed):
    """Every order is stored; a check that their new customers' histories are whole failed."""


class OrderLanes:
    """An orders file's lanes and tail, each a connection with its staging.

    Use as a context manager: `add` every good row's staged line (copy_lines.py) in
    file order, then `store`."""

    def __init__(self, database: Database, lanes: int | None = None):
        self.database = database
        self.lane_count = lanes or LANES
        if not 1 <= self.lane_count < _TAIL.bit_length():
            raise ValueError(f"an import has 1 to {_TAIL.bit_length() - 1} lanes")
        # The lanes' sessions and stagings, then the tail's.
        self.sessions: list[Session] = []
        self.stagings: list[OrderStaging] = []
        self._copies = ExitStack()
        self._lanes_of_id = bytearray(_ID_HASHES)

    def __enter__(self) -> OrderLanes:
        try:
            for _ in range(self.lane_count + 1):
                session = self.database.sessions()
                self.sessions.append(session)
                session.begin()
                self.stagings.append(self._copies.enter_context(OrderStaging(session)))
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    @property
    def rows(self) -> int:
        return sum(staging.rows for staging in self.stagings)

    def add(self, staged: StagedLine) -> None:
        source, order_id, customer_id, line = staged
        try:
            self.stagings[self._lane(source, order_id, customer_id)].add(line)
        except (DBAPIError, psycopg.Error) as error:
            raise ImportFailed(f"nothing was stored: {error}") from error

    def _lane(self, source: str, order_id: str, customer_id: str) -> int:
        """The lane of the order's customer, or the tail (index `lane_count`)."""
        lane = hash((source, customer_id)) % self.lane_count
        seen = self._lanes_of_id
        slot = hash((source, order_id)) % _ID_HASHES
        lanes = seen[slot]
        bit = 1 << lane
        if lanes & ~bit:  # another lane, or the tail, has had this id
            seen[slot] = lanes | _TAIL
            return self.lane_count
        seen[slot] = bit
        return lane

    def store(self, now: datetime) -> BatchOutcome:
        """Merge and commit every lane, then the tail; what the batch upsert would count."""
        try:
            self._copies.close()  # ends each COPY
        except (DBAPIError, psycopg.Error) as error:
            raise ImportFailed(f"nothing was stored: {error}") from error
        lanes = list(zip(self.sessions, self.stagings, strict=True))
        tail = lanes.pop()
        with ThreadPoolExecutor(self.lane_count, thread_name_prefix="import-lane") as pool:
            futures = [pool.submit(_store_lane, *lane, now) for lane in lanes]
        if not any(future.exception() for future in futures):
            futures.append(_done(_store_lane, *tail, now))
        failures = [failed for future in futures if (failed := future.exception()) is not None]
        if failures:
            stored = len(futures) - len(failures)  # a tail not run is not stored either
            _raise_for(failures[0], stored, parts=len(self.stagings))
        outcome = BatchOutcome()
        unchecked: list[Exception] = []
        for future in futures:
            lane_outcome, check_error = future.result()
            outcome.add(lane_outcome)
            unchecked += [check_error] if check_error else []
        if unchecked:
            reason = getattr(unchecked[0], "orig", None) or unchecked[0]  # without the SQL
            raise HistoriesUnchecked(
                "the file is stored, but whether other writers added orders to its new "
                f"customers meanwhile could not be checked ({reason}); run "
                "`customer-metrics metrics rebuild` to be sure of their purchase histories"
            )
        return outcome

    def __exit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None = None,
        trace: TracebackType | None = None,
    ) -> None:
        try:
            self._copies.__exit__(error_type, error, trace)  # a failed COPY is aborted
        except (DBAPIError, psycopg.Error):
            if error_type is None:
                raise
        finally:
            for session in self.sessions:
                _close(session)


def _close(session: Session) -> None:
    """Roll back a lane that did not commit; a lost connection has nothing to roll back."""
    try:
        session.close()
    except (DBAPIError, psycopg.Error):
        log.warning("an import lane's connection was lost before it could be closed")


def _raise_for(first: BaseException, stored: int, parts: int) -> None:
    """Say what failed and how much of the file is stored.

    A database's refusal is told in a sentence; anything else is a bug and goes
    up as it is, unless part of the file is stored, which the user must learn
    (the bug is then logged with its traceback).
    """
    if stored:
        if not isinstance(first, DBAPIError | ImportFailed):
            log.error("an import lane failed", exc_info=first)
        raise ImportIncomplete(
            f"the file is stored in {parts} parts and {parts - stored} of them failed "
            f"({first}); import it again: what is stored already counts as unchanged"
        ) from first
    if not isinstance(first, DBAPIError | ImportFailed):
        raise first
    raise ImportFailed(f"nothing was stored: {first}") from first


def _done(function: Any, *arguments: Any) -> Future[Any]:
    """`function` run here and now, as a finished future."""
    future: Future[Any] = Future()
    try:
        future.set_result(function(*arguments))
    except Exception as error:
        future.set_exception(error)
    return future


def _store_lane(
    session: Session, staging: OrderStaging, now: datetime
) -> tuple[BatchOutcome, Exception | None]:
    """Merge and commit, then check the histories it wrote; a failed check is returned."""
    outcome = _merge_and_commit(session, staging, now)
    try:
        staging.queue_histories_others_touched()
    except (DBAPIError, psycopg.Error) as error:
        log.error("an import lane could not check its customers' histories", exc_info=error)
        return outcome, error
    return outcome, None


def _merge_and_commit(session: Session, staging: OrderStaging, now: datetime) -> BatchOutcome:
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with session.begin_nested():
                outcome = staging.merge(now)
            break
        except OperationalError as error:
            if not isinstance(error.orig, DeadlockDetected) or attempt == _ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)  # the other lane commits meanwhile
    session.commit()
    return outcome
