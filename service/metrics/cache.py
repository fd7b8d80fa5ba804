"""Reports' states kept between requests, so a new data version recounts only what changed.

An entry remembers the data version its state was counted at, and the body
rendered from it; `service.metrics.answer` brings a state of an older version
up to date from the change log (each kind of report says what changes reach).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, cast

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from service.db import Database
from service.metrics.report_kind import ReportKind, State
from service.models import StoredReport
from service.sql import is_postgresql

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedReport(Generic[State]):
    version: int
    state: State
    body: dict[str, Any] | None  # None when loaded from the database: rendered on use


class ReportCache:
    """Reports by query: a bounded LRU in this worker, backed by the `metric_reports` table.

    The table lets every worker (and a restarted one) start from the state another
    counted, instead of from scratch; only the states are stored there.
    """

    def __init__(self, database: Database | None = None, max_entries: int = 256):
        self.database = database
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, CachedReport[Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, report: ReportKind[State], session: Session) -> CachedReport[State] | None:
        key = report.cache_key()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return cast(CachedReport[State], entry)
        if self.database is None:
            return None
        stored = session.get(StoredReport, _stored_key(key))
        if stored is None:
            return None
        return CachedReport(stored.version, report.restored(stored.counts), None)

    def put(self, report: ReportKind[State], entry: CachedReport[State], computed: bool) -> None:
        """Keep `entry`; `computed` ones are also shared through the database."""
        key = report.cache_key()
        with self._lock:
            current = self._entries.get(key)
            if current is None or current.version <= entry.version:
                self._entries[key] = entry
                self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        if computed and self.database is not None:
            self._share(key, entry.version, report.stored(entry.state))

    def _share(self, key: Hashable, version: int, state: Any) -> None:
        row = {
            "query_key": _stored_key(key),
            "version": version,
            "counts": state,
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
