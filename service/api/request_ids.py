"""Request ids: each request has one, returned in X-Request-ID and on each of its log lines."""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, has_request_context, request

from service.logs import filter_service_log

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is honoured if it is short and printable; otherwise we make our own.
_ACCEPTABLE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

access_log = logging.getLogger("service.access")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id") if has_request_context() else None
        return True


def install_request_ids(app: Flask) -> None:
    """Honour or assign X-Request-ID, return it, and log one access line per request.

    Every line the service logs while handling a request carries the request's id.
    """
    filter_service_log(_RequestIdFilter())

    @app.before_request
    def assign_request_id() -> None:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = given if _ACCEPTABLE_ID.fullmatch(given) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def return_request_id(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        started = g.get("started")
        access_log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2)
                if started
                else None,
            },
        )
        return response
