"""Per-query counts kept between requests, brought up to date from the change log.

An entry remembers the data version it was computed at. When the data has moved
on, only the periods the logged changes can reach are recomputed: a change at
time x affects the period holding x and the boundaries in (x, x + W], so the
periods meeting [first changed instant, last changed instant + W].
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from service.ingestion.changes import TimeSpan
from service.metrics.engine import PeriodCounts


@dataclass(frozen=True)
class CachedReport:
    version: int
    counts: tuple[PeriodCounts, ...]
    body: dict[str, Any]


class ReportCache:
    """A bounded, thread-safe LRU of reports by query; one per app (per worker process)."""

    def __init__(self, max_entries: int = 256):
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, CachedReport] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> CachedReport | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: Hashable, entry: CachedReport) -> None:
        with self._lock:
            current = self._entries.get(key)
            if current is not None and current.version > entry.version:
                return  # a concurrent request stored a newer report
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


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
