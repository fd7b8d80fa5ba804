"""Dialect-specific statements the ingestion needs, behind one small interface.

A batch's keys travel as one JSON array that both databases unpack natively.
PostgreSQL looks each key up through the unique index (LATERAL, whatever the
table statistics say) and writes a batch by COPY into a temporary table and
one `INSERT ... SELECT ... ON CONFLICT`. SQLite, embedded and local, joins on
json_each and writes with executemany.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from functools import cache
from operator import itemgetter
from typing import Any, TypeVar

from psycopg import sql as pg_sql
from psycopg.errors import UniqueViolation
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ColumnElement,
    MetaData,
    Select,
    String,
    Table,
    and_,
    bindparam,
    cast,
    event,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import QueryableAttribute, Session
from sqlalchemy.schema import CreateTable


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


SelectT = TypeVar("SelectT", bound=Select)  # type: ignore[type-arg]


def key_relation(session: Session, keys: Iterable[str]) -> Any:
    """A batch's keys as a one-column relation (`.c.key`) to join against.

    The keys travel as one JSON array parameter: both databases unpack it
    natively, whatever the batch size, and JSON encoding is far cheaper than
    binding a thousand parameters or a driver-encoded array.
    """
    payload = bindparam("batch_keys", json.dumps(list(keys)), type_=String)
    if is_postgresql(session):
        return (
            func.json_array_elements_text(func.cast(payload, postgresql.JSON))
            .table_valued("key")
            .render_derived(name="batch_keys")
        )
    each = func.json_each(payload).table_valued("value").alias("batch_keys")
    return select(each.c.value.label("key")).subquery("batch_keys")


def pk_relation(session: Session, pks: Iterable[int]) -> Any:
    """Primary keys as a one-column relation (`.c.pk`), like `key_relation`."""
    keys = key_relation(session, [str(pk) for pk in pks])
    return select(cast(keys.c.key, BigInteger).label("pk")).subquery("customer_keys")


def restricted_to_keys(
    session: Session,
    query: SelectT,
    column: QueryableAttribute[Any],
    keys: Iterable[str],
    lock: bool = False,
) -> SelectT:
    """`query` limited to rows whose unique `column` is one of `keys`, found through its index.

    On PostgreSQL each key is looked up by a LATERAL subquery: a plain join lets
    the planner pick a hash join over the whole table whenever its statistics
    are stale (a fresh database, a bulk load), which turns every batch into a
    full scan. SQLite probes the index with each key of an IN (subquery), where
    it would scan the source's rows for a join.

    With `lock` (PostgreSQL), the rows found are locked FOR NO KEY UPDATE in key
    order until the transaction ends; that mode leaves foreign-key checks
    (KEY SHARE) of other transactions unblocked.
    """
    wanted = key_relation(session, sorted(keys) if lock else keys)
    if not is_postgresql(session):
        return query.where(column.in_(select(wanted.c.key)))  # type: ignore[return-value]
    # LIMIT 1 (the key is unique) keeps the planner from flattening the lookup
    # back into the join it would mis-plan.
    lookup = query.where(column == wanted.c.key).limit(1)
    if lock:
        lookup = lookup.with_for_update(key_share=True)
    found = lookup.lateral("found")
    return select(found).select_from(wanted).join(found, true())  # type: ignore[return-value]


def upsert(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    key: Sequence[str],
    newer_only: bool,
    all_new: bool = False,
) -> dict[str, bool] | None:
    """Insert rows, or replace the stored row with the same key when it differs.

    With `newer_only`, a stored row whose updated_at is newer than the incoming
    one is left alone even if another writer stored it since we looked: the
    stale rule holds in the database, not only in the caller's bookkeeping.

    `all_new` says none of the keys was stored when the caller looked: a large
    batch then tries a plain INSERT first, a fifth cheaper for PostgreSQL than
    ON CONFLICT, and falls back to it if another writer stored a key since.

    On PostgreSQL, returns the last key column of each row actually written,
    mapped to True when it was inserted; None on SQLite, whose writers are
    serialised (BEGIN IMMEDIATE), so what the caller planned is what happened.
    """
    if not rows:
        return {} if is_postgresql(session) else None
    # Key order: concurrent batches then lock shared rows in the same order.
    rows = sorted(rows, key=lambda row: tuple(row[name] for name in key))
    insert, params = _insert_rows(session, table, rows)
    if all_new and is_postgresql(session) and len(rows) > SMALL_BATCH:
        try:
            with session.begin_nested():
                session.execute(insert)
            return {row[key[-1]]: True for row in rows}
        except IntegrityError as error:
            if not isinstance(error.orig, UniqueViolation):
                raise
    names = [name for name in rows[0] if name not in key]
    conditions: list[ColumnElement[bool]] = []
    if newer_only:
        stored, incoming = table.c.updated_at, insert.excluded.updated_at
        conditions.append(or_(stored.is_(None), incoming.is_(None), incoming >= stored))
    if not is_postgresql(session):
        statement = insert.on_conflict_do_update(
            index_elements=list(key),
            set_={name: insert.excluded[name] for name in names},
            where=and_(*conditions) if conditions else None,
        )
        session.execute(statement, params)
        return None
    # Leave identical rows alone: no dead row versions, and "not written" then
    # tells the caller a concurrent batch got there first.
    compared = [name for name in names if name != "ingested_at"]
    conditions.append(
        tuple_(*[_comparable(table.c[name]) for name in compared]).is_distinct_from(
            tuple_(*[_comparable(insert.excluded[name]) for name in compared])
        )
    )
    statement = insert.on_conflict_do_update(
        index_elements=list(key),
        set_={name: insert.excluded[name] for name in names},
        where=and_(*conditions),
    ).returning(table.c[key[-1]], literal_column("xmax = 0"))  # xmax 0: a fresh insert
    return {row[0]: bool(row[1]) for row in session.execute(statement, params)}


def _comparable(column: Any) -> Any:
    """json has no equality operator in PostgreSQL; jsonb does."""
    return cast(column, postgresql.JSONB) if isinstance(column.type, JSON) else column


def insert_missing_keys(
    session: Session,
    table: Table,
    key: Sequence[str],
    keys: Iterable[str],
    constants: dict[str, Any],
    returning: Sequence[ColumnElement[Any]],
) -> list[tuple[Any, ...]]:
    """Insert one row per key not stored yet: the last key column takes the key, the
    other columns `constants`. Existing rows are untouched. Returns `returning` of the
    rows inserted."""
    wanted = key_relation(session, sorted(keys))
    rows = select(
        *[literal(value, type_=table.c[name].type) for name, value in constants.items()],
        wanted.c.key,
    ).where(true())  # SQLite: keeps ON CONFLICT from parsing as a join constraint
    dialect = postgresql if is_postgresql(session) else sqlite
    statement = (
        dialect.insert(table)
        .from_select([*constants, key[-1]], rows)
        .on_conflict_do_nothing(index_elements=list(key))
        .returning(*returning)
    )
    return [tuple(row) for row in session.execute(statement)]


# Up to this many rows go in as one multi-row INSERT; more go through COPY.
SMALL_BATCH = 20


def _insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> tuple[Any, Any]:
    """An INSERT of `rows` for the session's dialect, and the parameters to run it with."""
    if is_postgresql(session) and len(rows) <= SMALL_BATCH:
        # A few rows (a webhook's order and customer): one statement, no staging round trips.
        return postgresql.insert(table).values(list(rows)), None
    if is_postgresql(session):
        staging = _stage_with_copy(session, table, rows)
        names = list(rows[0])
        insert = postgresql.insert(table).from_select(
            names, select(*[staging.c[name] for name in names])
        )
        return insert, None
    return sqlite.insert(table), list(rows)


def _stage_with_copy(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> Table:
    """Load rows into a temporary twin of `table` with binary COPY, the fastest way in.

    The twin lives as long as the database connection and is emptied at every
    commit, so concurrent requests (each on its own connection) never see each
    other's rows. COPY's row encoder is C; list parameters would go through
    psycopg's Python array dumper, which costs about 30 µs a row.
    """
    staging = _staging_table(table)
    connection = session.connection()
    created: set[str] = connection.connection.info.setdefault("staging_tables", set())
    used: set[str] = session.info.setdefault("staging_tables_used", set())
    if staging.name not in created:
        session.execute(CreateTable(staging, if_not_exists=True))
        created.add(staging.name)
        # A rollback undoes the CREATE too: forget it, so the next batch makes it again.
        event.listen(session, "after_rollback", lambda _: created.discard(staging.name), once=True)
    elif staging.name in used:
        session.execute(staging.delete())  # an earlier batch of this same transaction
    used.add(staging.name)
    names = tuple(rows[0])
    command = pg_sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        pg_sql.Identifier(staging.name), pg_sql.SQL(", ").join(map(pg_sql.Identifier, names))
    )
    values = itemgetter(*names)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(command) as copy:
        copy.set_types(_copy_types(table, names))
        for row in rows:
            copy.write_row(values(row))
    return staging


@cache
def _copy_types(table: Table, names: tuple[str, ...]) -> list[str]:
    """PostgreSQL type names of the columns, as binary COPY needs them ("varchar", ...)."""
    dialect = postgresql.dialect()
    return [
        re.sub(r"\(.*\)", "", table.c[name].type.compile(dialect=dialect)).lower() for name in names
    ]


@cache
def _staging_table(table: Table) -> Table:
    columns = [Column(column.name, column.type) for column in table.columns]
    return Table(
        f"incoming_{table.name}",
        MetaData(),
        *columns,
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DELETE ROWS",
    )
