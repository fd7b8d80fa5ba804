"""Dialect-specific statements the ingestion needs, behind one small interface."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, bindparam, or_, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def upsert(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    key: Sequence[str],
    newer_only: bool,
) -> None:
    """Insert rows, or replace the row with the same key.

    With `newer_only`, a stored row whose updated_at is newer than the incoming
    one is left alone even if another writer stored it since we looked: the
    stale rule holds under concurrency, not just in the caller's bookkeeping.
    """
    if not rows:
        return
    # Rows in key order: concurrent batches then lock shared keys in the same order
    # and cannot deadlock.
    rows = sorted(rows, key=lambda row: tuple(row[name] for name in key))
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert = dialect.insert(table)
    replaced = {name: insert.excluded[name] for name in rows[0] if name not in key}
    where: ColumnElement[bool] | None = None
    if newer_only:
        stored, incoming = table.c.updated_at, insert.excluded.updated_at
        where = or_(stored.is_(None), incoming.is_(None), incoming >= stored)
    statement = insert.on_conflict_do_update(index_elements=list(key), set_=replaced, where=where)
    session.execute(statement, list(rows))


def lock_keys(session: Session, namespace: str, keys: Iterable[str]) -> None:
    """Serialise writers of the same records until the transaction ends (PostgreSQL).

    Each batch reads what is stored, decides created/updated/unchanged/stale, then
    writes. Holding a transaction-scoped advisory lock per key makes that
    read-decide-write step atomic against a concurrent batch with the same keys,
    so a record delivered twice at once is counted once. Locks are taken in one
    sorted order, so two batches cannot deadlock. SQLite needs none of this: its
    writers are serialised by BEGIN IMMEDIATE.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    hashes = sorted({_lock_id(namespace, key) for key in keys})
    if hashes:
        session.execute(_LOCK_STATEMENT, {"ids": hashes})


_LOCK_STATEMENT = text(
    "SELECT count(pg_advisory_xact_lock(id)) FROM (SELECT unnest(:ids) AS id ORDER BY id) AS k"
).bindparams(bindparam("ids", type_=postgresql.ARRAY(postgresql.BIGINT)))


def _lock_id(namespace: str, key: str) -> int:
    digest = hashlib.blake2b(f"{namespace}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def insert_missing(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], key: Sequence[str]
) -> None:
    """Insert rows whose key is not stored yet; leave existing ones untouched."""
    if not rows:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).on_conflict_do_nothing(index_elements=list(key))
    session.execute(statement, list(rows))


def chunks(values: Iterable[Any], size: int = 900) -> Iterable[list[Any]]:
    """Split look-ups so no statement exceeds SQLite's bound-parameter limit."""
    chunk: list[Any] = []
    for value in values:
        chunk.append(value)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
