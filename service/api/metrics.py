"""/v1/metrics: per-period metrics and a one-period summary, with ETag revalidation."""

from __future__ import annotations

from typing import Any

import simplejson
from flask import Response, request
from flask_smorest import Blueprint

from service.api.security import protected
from service.extensions import database, report_cache, settings
from service.metrics import MetricsQuery, metrics_report
from service.metrics.purchase_history import refresh_stale
from service.metrics.report import report_tag
from service.schemas.metrics import MetricsArgs, MetricsReport, MetricsSummary, SummaryArgs

blp = Blueprint("metrics", __name__, url_prefix="/v1/metrics", description="Customer metrics.")

ETAG_HEADER = {
    "ETag": {
        "description": "Changes whenever ingested data changes; send it back in If-None-Match.",
        "schema": {"type": "string"},
    },
}


@blp.get("")
@protected(blp, "read")
@blp.arguments(MetricsArgs, location="query", as_kwargs=True)
@blp.response(200, MetricsReport, headers=ETAG_HEADER)
@blp.alt_response(304, description="Not modified: If-None-Match holds the current ETag.")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
def get_metrics(**arguments: Any) -> Response:
    """Metrics per period (METRICS.md §2-§5)

    Every period meeting [start, end] in `tz`, oldest first, empty ones
    included. Money fields are decimal strings, other ratios JSON numbers;
    each ratio's numerator and denominator are fields of the same period.
    """
    return _report(MetricsQuery.create(**arguments))


@blp.get("/summary")
@protected(blp, "read")
@blp.arguments(SummaryArgs, location="query", as_kwargs=True)
@blp.response(200, MetricsSummary, headers=ETAG_HEADER)
@blp.alt_response(304, description="Not modified: If-None-Match holds the current ETag.")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
def get_summary(**arguments: Any) -> Response:
    """The same metrics for one period: [start, the day after end) in `tz`"""
    return _report(MetricsQuery.create(**arguments, single_period=True))


def _report(query: MetricsQuery) -> Response:
    currency = settings().reporting_currency
    refresh_stale(database())  # histories queued by writers since the last read
    with database().reading() as session:
        tag = report_tag(session, query, currency)
        if request.if_none_match.contains_weak(tag.strip('"')):
            return _not_modified(tag)
        body, tag = metrics_report(session, query, currency, report_cache())
    # simplejson writes Decimals as JSON numbers, exactly as they are.
    response = Response(simplejson.dumps(body, use_decimal=True), mimetype="application/json")
    response.headers["ETag"] = tag
    response.headers["Cache-Control"] = "no-cache"
    return response


def _not_modified(tag: str) -> Response:
    response = Response(status=304)
    response.headers["ETag"] = tag
    response.headers["Cache-Control"] = "no-cache"
    return response
