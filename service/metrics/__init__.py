"""The metrics engine: METRICS.md §2-§5 computed from the stored records."""

from service.metrics.cache import ReportCache
from service.metrics.period_counts import PeriodCounts, count_periods
from service.metrics.query import MAX_PERIODS, Filters, InvalidQuery, MetricsQuery
from service.metrics.report import metrics_report

__all__ = [
    "MAX_PERIODS",
    "Filters",
    "InvalidQuery",
    "MetricsQuery",
    "PeriodCounts",
    "ReportCache",
    "count_periods",
    "metrics_report",
]
