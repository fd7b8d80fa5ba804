"""The metrics report: periods, their exact counts, spend, and every §4 field.

This is the entry point the API and the CLI share; it needs a database session
and nothing of HTTP.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy.orm import Session

from service.change_log import changes_since, current_version
from service.metrics.cache import CachedReport, ReportCache, stale_runs
from service.metrics.formulas import period_fields
from service.metrics.period_counts import PeriodCounts, count_periods
from service.metrics.periods import rfc3339
from service.metrics.query import MetricsQuery
from service.metrics.spend import spend_per_period
from service.money import currency_exponent


def metrics_report(
    session: Session, query: MetricsQuery, currency: str, cache: ReportCache | None = None
) -> tuple[dict[str, Any], str]:
    """The report for `query` and its entity tag (which changes whenever the data does)."""
    version = current_version(session)
    key = (query.cache_key(), currency)
    cached = cache.get(key, session) if cache is not None else None
    if cached is not None and cached.version == version and cached.body is not None:
        return cached.body, entity_tag(key, version)
    computed = cached is None or cached.version != version
    counts = _counts(session, query, cached) if computed else cached.counts  # type: ignore[union-attr]
    body = _body(session, query, currency, counts)
    if cache is not None:
        cache.put(key, CachedReport(version, counts, body), computed=computed)
    return body, entity_tag(key, version)


def report_tag(session: Session, query: MetricsQuery, currency: str) -> str:
    """The entity tag `metrics_report` would answer with, without computing the report."""
    return entity_tag((query.cache_key(), currency), current_version(session))


def entity_tag(key: object, version: int) -> str:
    digest = hashlib.sha256(repr((key, version)).encode()).hexdigest()[:32]
    return f'"{digest}"'


def _counts(
    session: Session, query: MetricsQuery, cached: CachedReport | None
) -> tuple[PeriodCounts, ...]:
    periods = query.periods()
    boundaries = [p.start for p in periods] + [periods[-1].end]
    if cached is None:
        return tuple(count_periods(session, boundaries, query.window, query.filters))
    counts = list(cached.counts)
    spans = changes_since(session, cached.version)
    for run in stale_runs(boundaries, spans, query.window):
        fresh = count_periods(
            session, boundaries[run.start : run.stop + 1], query.window, query.filters
        )
        counts[run.start : run.stop] = fresh
    return tuple(counts)


def _body(
    session: Session, query: MetricsQuery, currency: str, counts: tuple[PeriodCounts, ...]
) -> dict[str, Any]:
    periods = query.periods()
    zone = query.zone
    spend = None
    if query.filters.spend_applies:
        first_days = [p.first_day for p in periods] + [periods[-1].next_first_day]
        spend = spend_per_period(session, first_days, query.filters.channel)
    minor_per_unit = 10 ** (currency_exponent(currency) or 0)
    rows = []
    for k, period in enumerate(periods):
        fields = period_fields(counts[k], None if spend is None else spend[k], minor_per_unit)
        instants = {"start": rfc3339(period.start, zone), "end": rfc3339(period.end, zone)}
        rows.append(instants | fields)
    head: dict[str, Any] = {} if query.single_period else {"interval": query.interval}
    head |= {
        "tz": query.tz,
        "churn_window_days": query.churn_window_days,
        "currency": currency,
        "filters": query.filters.as_dict(),
    }
    if query.single_period:
        return head | {"period": rows[0]}
    return head | {"periods": rows}
