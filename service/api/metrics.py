"""/v1/metrics: per-period metrics and a one-period summary, with ETag revalidation."""

from __future__ import annotations

from typing import Any

import simplejson
from flask import Response, request
from flask_smorest import Blueprint

from service.api.security import protected
from service.extensions import database, report_cache, settings
from service.metrics import MetricsQuery, PeriodReport, answer
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
    report = PeriodReport(query, settings().reporting_currency)
    answered = answer(database(), report, report_cache(), if_none_match=_held_by_client)
    if answered.body is None:
        response = Response(status=304)
    else:
        # simplejson writes Decimals as JSON numbers, exactly as they are.
        text = simplejson.dumps(answered.body, use_decimal=True)
        response = Response(text, mimetype="application/json")
    response.headers["ETag"] = answered.tag
    response.headers["Cache-Control"] = "no-cache"
    return response


def _held_by_client(tag: str) -> bool:
    """If-None-Match compares weakly (RFC 9110 §13.1.2)."""
    return request.if_none_match.contains_weak(tag.strip('"'))
