"""One additive statement over disjoint parts of a table, on connections that share a snapshot.

The per-period pass over orders is a sum over order rows: split the table into
parts, and the parts' grouped results simply add up. On PostgreSQL the
reader's transaction exports its snapshot and helper connections import it
(`SET TRANSACTION SNAPSHOT`), so every part sees exactly the same rows while the
parts run on separate cores; each part reads its own range of heap pages (a TID
range scan). The planner would not parallelise this query itself: it cannot
estimate how few groups come out, so it would gather every row instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Engine,
    Table,
    cast,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

# Parts per statement, at most: more parts than cores only add overhead.
MAX_PARTS = max(1, min(os.cpu_count() or 1, 4))
# Below this many heap pages (8 kB each) one part is quicker than several.
MIN_PAGES_TO_SPLIT = 2_000
# Heap pages read to place the cuts between parts.
SAMPLE_PAGES = 300
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")
_helpers = ThreadPoolExecutor(max_workers=MAX_PARTS * 4, thread_name_prefix="metrics-part")


def rows_in_parts(
    session: Session,
    table: Table,
    statement_for: Callable[[ColumnElement[bool], bool], Any],
) -> Iterator[Any]:
    """The rows of `statement_for(part, first)` for parts of `table` that together make all of it.

    `part` is a condition on `table`'s rows to add to the statement; `first` is
    true for exactly one part (for rows that must be counted once, not per part).
    The session must be in a REPEATABLE READ transaction (`Database.reading()`).
    """
    parts, bind = MAX_PARTS, session.get_bind()
    splittable = parts > 1 and bind.dialect.name == "postgresql"
    pages = _heap_pages(session, table) if splittable else 0
    if not splittable or pages < MIN_PAGES_TO_SPLIT:
        yield from session.execute(statement_for(true(), True))
        return
    snapshot = session.execute(select(func.pg_export_snapshot())).scalar_one()
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise RuntimeError(f"unexpected snapshot id {snapshot!r}")
    conditions = _page_ranges(table, _balanced_cuts(session, table, pages, parts))
    others = [
        _helpers.submit(_rows_in_snapshot, bind.engine, snapshot, statement_for(condition, False))
        for condition in conditions[1:]
    ]
    try:
        yield from session.execute(statement_for(conditions[0], True))
    finally:
        results = [future.result() for future in others]
    for rows in results:
        yield from rows


def _heap_pages(session: Session, table: Table) -> int:
    """The table's main fork in pages (block_size is 8 kB unless PostgreSQL was built otherwise)."""
    size = func.pg_relation_size(table.name, type_=BigInteger)
    block = cast(func.current_setting("block_size"), BigInteger)
    return int(session.execute(select(size / block)).scalar_one())


def _balanced_cuts(session: Session, table: Table, pages: int, parts: int) -> list[int]:
    """Pages splitting the table's live rows into `parts` about equal shares.

    Live rows are not spread evenly over the heap (an update writes a row's new
    version elsewhere), so the cuts come from a sample of about SAMPLE_PAGES pages.
    """
    percent = min(100.0, 100.0 * SAMPLE_PAGES / pages)
    sampled = table.tablesample(func.system(percent), name="sampled")
    block = literal_column("(sampled.ctid::text::point)[0]", type_=BigInteger)
    fractions = [k / parts for k in range(1, parts)]
    cuts = session.execute(
        select(func.percentile_disc(postgresql.array(fractions)).within_group(block)).select_from(
            sampled
        )
    ).scalar_one()
    if not cuts or any(cut is None for cut in cuts):
        return [pages * k // parts for k in range(1, parts)]
    return sorted(int(cut) for cut in cuts)


def _page_ranges(table: Table, cuts: list[int]) -> list[ColumnElement[bool]]:
    """Conditions on ctid splitting the heap at these pages; the last range is open, so
    rows on pages added since the sample are not missed."""
    ctid: ColumnElement[Any] = literal_column(f"{table.name}.ctid")
    tid: list[ColumnElement[Any]] = [literal_column(f"'({cut},0)'::tid") for cut in cuts]
    conditions = [ctid < tid[0]]
    conditions += [(ctid >= low) & (ctid < high) for low, high in pairwise(tid)]
    conditions.append(ctid >= tid[-1])
    return conditions


def _rows_in_snapshot(engine: Engine, snapshot: str, statement: Any) -> list[Any]:
    with engine.connect() as connection:
        connection = connection.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
        # Must be the transaction's first statement; the id was checked to be plain.
        connection.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        rows = list(connection.execute(statement))
        connection.rollback()
        return rows
