"""Which database failures pass by themselves, and running a unit of work again (no database)."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from psycopg import errors as pg
from sqlalchemy import exc as sa

from service import transient
from service.transient import is_conflict, is_unavailable, is_worth_retrying, retrying


def wrapped(orig: Exception) -> sa.DBAPIError:
    """The error as SQLAlchemy raises it from a statement."""
    base = sqlite3.Error if isinstance(orig, sqlite3.Error) else psycopg.Error
    return sa.DBAPIError.instance("SELECT 1", {}, orig, base)


@pytest.mark.parametrize(
    ("orig", "conflict", "unavailable", "retried"),
    [
        (pg.DeadlockDetected("deadlock detected"), True, False, True),
        (pg.SerializationFailure("could not serialize access"), True, False, True),
        (psycopg.OperationalError("connection failed: Connection refused"), False, True, False),
        (pg.CannotConnectNow("the database system is starting up"), False, True, False),
        (
            pg.AdminShutdown("terminating connection due to administrator command"),
            False,
            True,
            False,
        ),
        (pg.TooManyConnections("sorry, too many clients already"), False, True, False),
        (pg.UniqueViolation("duplicate key"), False, False, False),  # a bug: 500
        (pg.UndefinedTable("relation does not exist"), False, False, False),
        (sqlite3.OperationalError("database is locked"), True, False, False),  # waited already
        (sqlite3.OperationalError("unable to open database file"), False, True, False),
        (sqlite3.OperationalError("no such table: orders"), False, False, False),
    ],
)
def test_database_failures_are_told_apart_from_bugs(orig, conflict, unavailable, retried):
    error = wrapped(orig)
    assert (is_conflict(error), is_unavailable(error), is_worth_retrying(error)) == (
        conflict,
        unavailable,
        retried,
    )


def test_a_connection_lost_inside_a_savepoint_is_unavailability_not_a_bug():
    """SQLAlchemy then raises PendingRollbackError while rolling back, the loss as context."""
    error = sa.PendingRollbackError("Can't reconnect until invalid transaction is rolled back")
    error.__context__ = wrapped(psycopg.OperationalError("server closed the connection"))
    assert is_unavailable(error)
    assert not is_unavailable(sa.PendingRollbackError("after some other failure"))


def test_a_unit_of_work_that_keeps_deadlocking_runs_a_bounded_number_of_times(monkeypatch):
    monkeypatch.setattr(transient, "PAUSE_SECONDS", 0)
    runs: list[int] = []

    def deadlocks() -> None:
        runs.append(1)
        raise wrapped(pg.DeadlockDetected("deadlock detected"))

    with pytest.raises(sa.DBAPIError):
        retrying(deadlocks)
    assert len(runs) == transient.ATTEMPTS


def test_a_unit_of_work_that_fails_with_a_bug_runs_once():
    runs: list[int] = []

    def fails() -> None:
        runs.append(1)
        raise wrapped(pg.UniqueViolation("duplicate key"))

    with pytest.raises(sa.DBAPIError):
        retrying(fails)
    assert runs == [1]
