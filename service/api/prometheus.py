"""/metrics: Prometheus metrics of the service, for a key with the `metrics` scope."""

from __future__ import annotations

from flask import Response
from flask_smorest import Blueprint

from service.api.security import protected
from service.extensions import database
from service.monitoring.exposition import CONTENT_TYPE, scrape

blp = Blueprint("prometheus", __name__, description="Metrics for Prometheus.")


@blp.get("/metrics")
@protected(blp, "metrics")
@blp.doc(
    responses={
        "200": {
            "description": "The Prometheus text exposition format (see README, Monitoring).",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    }
)
def prometheus_metrics() -> Response:
    """Prometheus metrics: requests, deliveries, mapping lag, queues, database pool"""
    return Response(scrape(database()), mimetype=None, content_type=CONTENT_TYPE)
