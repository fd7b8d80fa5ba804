"""The period report (METRICS.md §2-§5): periods, their exact counts, spend, every field.

Its state is the periods' counts. A change at time x affects the period holding
x and the boundaries in (x, x + W], so after changes only the periods meeting
[first changed instant, last changed instant + W] are counted again.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Hashable, Sequence
from dataclasses import astuple, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from service.change_log import TimeSpan
from service.metrics.fields import period_fields
from service.metrics.period_counts import PeriodCounts, count_periods
from service.metrics.periods import rfc3339
from service.metrics.query import MetricsQuery
from service.metrics.spend import spend_per_period
from service.money import currency_exponent

Counts = tuple[PeriodCounts, ...]


@dataclass(frozen=True)
class PeriodReport:
    """GET /v1/metrics (and its summary, `query.single_period`) in `currency`."""

    query: MetricsQuery
    currency: str

    def cache_key(self) -> Hashable:
        return (self.query.cache_key(), self.currency)

    def count(self, session: Session) -> Counts:
        return tuple(self._count_between(session, self._boundaries()))

    def recount(self, session: Session, earlier: Counts, changes: Sequence[TimeSpan]) -> Counts:
        boundaries = self._boundaries()
        counts = list(earlier)
        for run in stale_runs(boundaries, changes, self.query.window):
            fresh = self._count_between(session, boundaries[run.start : run.stop + 1])
            counts[run.start : run.stop] = fresh
        return tuple(counts)

    def render(self, session: Session, state: Counts) -> dict[str, Any]:
        query = self.query
        periods = query.periods()
        spend = None
        if query.filters.spend_applies:
            first_days = [p.first_day for p in periods] + [periods[-1].next_first_day]
            spend = spend_per_period(session, first_days, query.filters.channel)
        minor_per_unit = 10 ** (currency_exponent(self.currency) or 0)
        zone, rows = query.zone, []
        for k, period in enumerate(periods):
            fields = period_fields(state[k], None if spend is None else spend[k], minor_per_unit)
            instants = {"start": rfc3339(period.start, zone), "end": rfc3339(period.end, zone)}
            rows.append(instants | fields)
        head: dict[str, Any] = {} if query.single_period else {"interval": query.interval}
        head |= {
            "tz": query.tz,
            "churn_window_days": query.churn_window_days,
            "currency": self.currency,
            "filters": query.filters.as_dict(),
        }
        if query.single_period:
            return head | {"period": rows[0]}
        return head | {"periods": rows}

    def stored(self, state: Counts) -> list[list[int]]:
        return [list(astuple(counts)) for counts in state]

    def restored(self, stored: Any) -> Counts:
        return tuple(PeriodCounts(*values) for values in stored)

    def _count_between(self, session: Session, boundaries: list[datetime]) -> list[PeriodCounts]:
        return count_periods(session, boundaries, self.query.window, self.query.filters)

    def _boundaries(self) -> list[datetime]:
        periods = self.query.periods()
        return [p.start for p in periods] + [periods[-1].end]


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
