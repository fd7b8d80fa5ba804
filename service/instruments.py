"""The metrics the service's processes count, all named customer_metrics_*.

Created at import: under gunicorn PROMETHEUS_MULTIPROC_DIR is set before any
process imports this module (service/gunicorn_conf.py), so every value is
written to that directory and `/metrics` sums them over the processes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# The process's own metrics, when it is not one of several (tests, `flask run`).
REGISTRY = CollectorRegistry(auto_describe=True)

REQUEST_SECONDS = Histogram(
    "customer_metrics_http_request_duration_seconds",
    "Time to answer a request, by route (the URL rule, not the path), method and status.",
    ("route", "method", "status"),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
DELIVERIES_RECEIVED = Counter(
    "customer_metrics_webhook_deliveries_received",
    "Verified webhook deliveries answered, by sender kind and outcome "
    "(received: stored now; duplicate: stored before).",
    ("kind", "outcome"),
    registry=REGISTRY,
)
DELIVERIES_MAPPED = Counter(
    "customer_metrics_webhook_deliveries_mapped",
    "Stored webhook deliveries mapped into records, by outcome (processed, ignored, failed).",
    ("outcome",),
    registry=REGISTRY,
)
POOL_CONNECTIONS = Gauge(
    "customer_metrics_database_pool_connections",
    "Database connections held by the service's pools, by state (in_use, idle), "
    "summed over the live processes.",
    ("state",),
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
