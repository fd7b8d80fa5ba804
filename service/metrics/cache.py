"""Per-query counts kept between requests, brought up to date from the change log.

An entry remembers the data version it was computed at. When the data has moved
on, only the periods the logged changes can reach are recomputed: a change at
time x affects the period holding x and the boundaries in (x, x + W], so the
periods meeting [first changed instant, last changed instant + W].
"""

from __future__ import annotations

import hashlib
import logging
import threading
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import astuple, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from service.change_log import TimeSpan
from service.db import Database
from service.metrics.period_counts import PeriodCounts
from service.models import StoredReport
from service.sql import is_postgresql

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedReport:
    version: int
    counts: tuple[PeriodCounts, ...]
    body: dict[str, Any] | None  # None when loaded from the database: rendered on use


class ReportCache:
    """Reports by query: a bounded LRU in this worker, backed by the `metric_reports` table.

    The table lets every worker (and a restarted one) start from the counts another
    computed, instead of from scratch; only the counts are stored there.
    """

    def __init__(self, database: Database | None = None, max_entries: int = 256):
        self.database = database
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, CachedReport] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, session: Session) -> CachedReport | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
        if self.database is None:
            return None
        stored = session.get(StoredReport, _stored_key(key))
        if stored is None:
            return None
        counts = tuple(PeriodCounts(*values) for values in stored.counts)
        return CachedReport(stored.version, counts, None)

    def put(self, key: Hashable, entry: CachedReport, computed: bool) -> None:
        """Keep `entry`; `computed` ones are also shared through the database."""
        with self._lock:
            current = self._entries.get(key)
            if current is None or current.version <= entry.version:
                self._entries[key] = entry
                self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        if computed and self.database is not None:
            self._share(key, entry)

    def _share(self, key: Hashable, entry: CachedReport) -> None:
        row = {
            "query_key": _stored_key(key),
            "version": entry.version,
            "counts": [list(astuple(c)) for c in entry.counts],
            "computed_at": datetime.now(UTC),
        }
        assert self.database is not None
        try:
            with self.database.transaction() as session:
                table = StoredReport.__table__
                dialect = postgresql if is_postgresql(session) else sqlite
                statement = dialect.insert(table).values(row)
                session.execute(
                    statement.on_conflict_do_update(
                        index_elements=["query_key"],
                        set_={name: statement.excluded[name] for name in row},
                        where=table.c.version < statement.excluded.version,  # type: ignore[attr-defined]
                    )
                )
        except SQLAlchemyError:
            # Sharing is an optimisation: the answer is right without it.
            log.warning("could not store a metrics report for other workers", exc_info=True)


def _stored_key(key: Hashable) -> str:
    return hashlib.sha256(repr(key).encode()).hexdigest()


def stale_runs(
    boundaries: Sequence[datetime], spans: Sequence[TimeSpan], window: timedelta
) -> list[range]:
    """Maximal runs of consecutive period indexes that the changed spans can reach."""
    n = len(boundaries) - 1
    marks = [0] * (n + 1)  # difference array: many spans, one pass
    for span in spans:
        # Periods k with boundaries[k + 1] > first and boundaries[k] <= last + W.
        low = max(bisect_right(boundaries, span.first) - 1, 0)
        high = min(bisect_right(boundaries, span.last + window) - 1, n - 1)
        if low <= high:
            marks[low] += 1
            marks[high + 1] -= 1
    stale, depth = [], 0
    for k in range(n):
        depth += marks[k]
        stale.append(depth > 0)
    runs: list[range] = []
    k = 0
    while k < n:
        if stale[k]:
            start = k
            while k < n and stale[k]:
                k += 1
            runs.append(range(start, k))
        else:
            k += 1
    return runs
