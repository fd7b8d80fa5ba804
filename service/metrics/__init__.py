"""The metrics engine: METRICS.md §2-§5 computed from the stored records.

Ask `answer(database, PeriodReport(query, currency), cache)`; it refreshes the
purchase histories, reads one snapshot and serves from the cache when it can.
"""

from service.metrics.answer import (
    MetricsAnswer,
    answer,
    answer_in_session,
    refresh_purchase_histories,
)
from service.metrics.cache import ReportCache
from service.metrics.fields import FIELDS, FieldKind, MetricField
from service.metrics.period_counts import PeriodCounts, count_periods
from service.metrics.period_report import PeriodReport
from service.metrics.purchase_history import rebuild_purchase_history
from service.metrics.query import MAX_PERIODS, Filters, InvalidQuery, MetricsQuery
from service.metrics.report_kind import ReportKind

__all__ = [
    "FIELDS",
    "MAX_PERIODS",
    "FieldKind",
    "Filters",
    "InvalidQuery",
    "MetricField",
    "MetricsAnswer",
    "MetricsQuery",
    "PeriodCounts",
    "PeriodReport",
    "ReportCache",
    "ReportKind",
    "answer",
    "answer_in_session",
    "count_periods",
    "rebuild_purchase_history",
    "refresh_purchase_histories",
]
