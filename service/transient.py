"""Database failures that pass by themselves, told apart from bugs.

Two kinds: the database is *unavailable* (down, starting, restarting, out of
connections, the connection lost), and a transaction lost a *conflict* with a
concurrent one (a deadlock, a serialization failure, a lock it may not wait
for). A conflict rolled the whole transaction back, so the unit of work can be
run again as it is: `retrying` does that a few times. What still fails, and
every unavailability, is answered 503 with Retry-After (service/errors.py).
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from sqlalchemy import exc as sa_exc

T = TypeVar("T")
log = logging.getLogger(__name__)

# Runs of one unit of work, the first included; with short random pauses between
# them, two transactions that deadlocked do not meet again in the same step.
ATTEMPTS = 4
PAUSE_SECONDS = 0.05

# psycopg's OperationalErrors are the server's and the network's doing; these
# SQLSTATEs are one transaction losing to another: class 40 (transaction rollback:
# serialization failure, deadlock) and 55P03 (lock not available).
_PG_CONFLICT_CLASS = "40"
_PG_LOCK_NOT_AVAILABLE = "55P03"
# SQLite's OperationalError also covers bad SQL: only these messages are passing ones.
_SQLITE_CONFLICT = ("database is locked", "database table is locked")
_SQLITE_UNAVAILABLE = ("unable to open database file", "disk i/o error")


def driver_error(error: BaseException) -> BaseException:
    """The driver's exception behind a SQLAlchemy one (or the error itself)."""
    if isinstance(error, sa_exc.DBAPIError) and error.orig is not None:
        return error.orig
    return error


def error_line(error: BaseException) -> str:
    """The driver's error as one line for a log: its type and the first line of its text."""
    cause = driver_error(error)
    text = str(cause).strip()
    return f"{type(cause).__name__}: {text.splitlines()[0]}" if text else type(cause).__name__


def is_conflict(error: BaseException) -> bool:
    """A transaction lost to a concurrent one and was rolled back whole."""
    return any(_is_conflict(link) for link in _chain(error))


def is_unavailable(error: BaseException) -> bool:
    """The database cannot be reached or cannot serve now: not a bug, and not for long."""
    return any(_is_unavailable(link) for link in _chain(error))


def is_transient(error: BaseException) -> bool:
    return is_conflict(error) or is_unavailable(error)


def is_worth_retrying(error: BaseException) -> bool:
    """A conflict that a new run can win: PostgreSQL's. A locked SQLite database was
    already waited for (busy_timeout, 10 s); waiting again would only hold the client."""
    return is_conflict(error) and not isinstance(driver_error(error), sqlite3.Error)


def _chain(error: BaseException) -> list[BaseException]:
    """The error and what it was raised from or while handling: SQLAlchemy reports a
    connection lost inside a savepoint as PendingRollbackError, raised while rolling
    back, with the disconnect as its context."""
    links: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and len(links) < 5:
        links.append(link)
        link = link.__cause__ or link.__context__
    return links


def _is_conflict(error: BaseException) -> bool:
    orig = driver_error(error)
    if isinstance(orig, psycopg.Error):
        state = orig.sqlstate or ""
        return state.startswith(_PG_CONFLICT_CLASS) or state == _PG_LOCK_NOT_AVAILABLE
    return isinstance(orig, sqlite3.OperationalError) and str(orig).startswith(_SQLITE_CONFLICT)


def _is_unavailable(error: BaseException) -> bool:
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sa_exc.TimeoutError):  # every pooled connection busy
        return True
    orig = driver_error(error)
    if isinstance(orig, psycopg.OperationalError):
        return not _is_conflict(orig)
    if isinstance(orig, psycopg.InterfaceError):  # a connection already closed
        return True
    return isinstance(orig, sqlite3.OperationalError) and str(orig).lower().startswith(
        _SQLITE_UNAVAILABLE
    )


def retrying(
    work: Callable[[], T],
    retriable: Callable[[BaseException], bool] = is_worth_retrying,
    what: str = "a transaction",
) -> T:
    """`work()`, run again (up to ATTEMPTS runs in all) while it fails with a `retriable` error.

    `work` must be one whole unit of work (its transactions begin and end inside),
    so that a failed run left nothing behind. The last failure is raised as it is.
    """
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return work()
        except Exception as error:
            if attempt == ATTEMPTS or not retriable(error):
                raise
            log.info(
                "%s met a concurrent one (%s); running it again",
                what,
                type(driver_error(error)).__name__,
                extra={"attempt": attempt},
            )
        time.sleep(random.uniform(0.5, 1.5) * PAUSE_SECONDS * attempt)
    raise AssertionError("unreachable")  # pragma: no cover
