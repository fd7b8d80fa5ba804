"""Time every request, labelled with its URL rule (never the raw path: unbounded labels)."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from service.instruments import REQUEST_SECONDS

UNMATCHED = "<unmatched>"  # a path no route answers (404, 405)


def install_request_metrics(app: Flask) -> None:
    """Observe each request's duration in REQUEST_SECONDS."""

    @app.before_request
    def start_clock() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def observe(response: Response) -> Response:
        started = g.get("metrics_started")
        if started is not None:
            rule = request.url_rule
            REQUEST_SECONDS.labels(
                rule.rule if rule is not None else UNMATCHED,
                request.method,
                str(response.status_code),
            ).observe(time.perf_counter() - started)
        return response
