"""One error shape for every failure: RFC 9457 problem details (application/problem+json).

The core's failures (service/failures.py) carry no status: here each kind gets its
status and problem type (FAILURE_ANSWERS). Refusals only HTTP makes (no key, wrong
media type, not ready) are Problems, which carry theirs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import psycopg
from flask import Flask, Response, g, json
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from service.failures import (
    Conflict,
    Failure,
    InvalidInput,
    MalformedInput,
    NotAuthentic,
    RateLimited,
    Unavailable,
)
from service.transient import error_line, is_conflict, is_unavailable

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:customer-metrics:problem:"

log = logging.getLogger(__name__)
# What a 503 for a passing database condition tells the client to wait.
RETRY_AFTER_SECONDS = 1


class Problem(Exception):
    """A refusal only HTTP makes, which the client can act on. Subclasses fix status and type."""

    status = 400
    code = "bad-request"

    def __init__(
        self,
        detail: str,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors or [])
        self.headers = dict(headers or {})


class Unauthenticated(Problem):
    status, code = 401, "unauthenticated"


class Forbidden(Problem):
    status, code = 403, "forbidden"


class NotFound(Problem):
    status, code = 404, "not-found"


class UnsupportedMediaType(Problem):
    status, code = 415, "unsupported-media-type"


class NotReady(Problem):
    status, code = 503, "not-ready"


# The status and problem type of each kind of the core's failures; a subclass answers
# as the nearest kind it derives from.
FAILURE_ANSWERS: dict[type[Failure], tuple[int, str]] = {
    MalformedInput: (400, "malformed-body"),
    NotAuthentic: (401, "unauthenticated"),
    Conflict: (409, "conflict"),
    InvalidInput: (422, "validation-failed"),
    RateLimited: (429, "rate-limited"),
    Unavailable: (503, "not-ready"),
}

# Codes for errors Werkzeug raises itself (routing, body size, methods).
_HTTP_CODES = {
    400: "malformed-body",
    404: "not-found",
    405: "method-not-allowed",
    408: "request-timeout",
    413: "body-too-large",
    415: "unsupported-media-type",
    422: "validation-failed",
}


def problem_response(
    status: int,
    code: str,
    detail: str,
    errors: Sequence[Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Render a problem+json response; every error the service returns goes through here."""
    body = problem_document(status, code, detail, errors, g.get("request_id"))
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_CONTENT_TYPE)
    response.headers.update(headers or {})
    return response


def problem_document(
    status: int,
    code: str,
    detail: str,
    errors: Sequence[Mapping[str, Any]] = (),
    request_id: str | None = None,
) -> dict[str, Any]:
    """The problem+json body; also written by the HTTP server, outside any request."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = list(errors)
    if request_id:
        body["request_id"] = request_id
    return body


def render_problem(error: Problem) -> Response:
    return problem_response(error.status, error.code, error.detail, error.errors, error.headers)


def render_failure(error: Failure) -> Response:
    answer = next((FAILURE_ANSWERS[k] for k in type(error).__mro__ if k in FAILURE_ANSWERS), None)
    if answer is None:  # a kind of failure nobody gave an answer: a bug
        return render_unexpected(error)
    status, code = answer
    retry_after = getattr(error, "retry_after", None)
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return problem_response(status, code, error.detail, error.errors, headers)


def render_http_exception(error: HTTPException) -> Response:
    """Werkzeug's own errors (404 routing, 405, 413, ...) as problem+json, keeping Allow."""
    status = error.code or 500
    if status >= 500:
        return render_unexpected(error)
    headers = {k: v for k, v in error.get_headers() if k.lower() == "allow"}
    detail = _http_detail(error)
    errors = _webargs_errors(getattr(error, "data", None))
    return problem_response(status, _HTTP_CODES.get(status, "http-error"), detail, errors, headers)


def render_unexpected(error: Exception) -> Response:
    """A bug: log it with the request id, tell the client only that it happened."""
    original = getattr(error, "original_exception", None) or error
    log.error("unhandled error", exc_info=original)
    return problem_response(
        500,
        "internal-error",
        "The service failed to handle this request. It has been logged under the request id.",
    )


def render_database_error(error: Exception) -> Response:
    """A database that is down, starting or restarting, or a lost conflict, is a 503 to retry.

    Logged as one line: it is the world's doing, not a bug. SQLAlchemy has by then
    dropped every pooled connection made before a loss, so the retry gets a fresh
    one. (Checking each connection before use would cost a round trip on every
    request.) Any other database error is a bug.
    """
    reason = error_line(error)
    if is_conflict(error):
        log.warning("a transaction kept losing to concurrent ones: %s", reason)
        return _retry_later(
            "concurrent-conflict",
            "The request kept conflicting with concurrent writes; nothing was stored. "
            "Retry the request.",
        )
    if not is_unavailable(error):
        return render_unexpected(error)
    log.warning("the database is unavailable: %s", reason)
    return _retry_later(
        "database-unavailable",
        "The database is unavailable (restarting or unreachable); nothing was stored. "
        "Retry the request.",
    )


def _retry_later(code: str, detail: str) -> Response:
    return problem_response(503, code, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def _http_detail(error: HTTPException) -> str:
    data = getattr(error, "data", None) or {}
    if "message" in data:
        return str(data["message"])
    if error.code == 405:
        return "This method is not allowed here; see the Allow header."
    if error.code == 413:
        return "The request body is larger than this service accepts (MAX_BODY_BYTES)."
    if error.code == 404:
        return "No such resource. The API lives under /v1; see /docs."
    if error.code == 422:
        return "Some parameters are invalid; see errors."
    return error.description or HTTPStatus(error.code or 500).phrase


def _webargs_errors(data: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """webargs reports {location: {field: [messages]}}; we report one entry per message."""
    if not data or "messages" not in data:
        return []
    errors: list[dict[str, str]] = []
    for location, fields in data["messages"].items():
        for field, messages in fields.items():
            for message in messages if isinstance(messages, list) else [messages]:
                errors.append({"field": field, "in": location, "message": str(message)})
    return errors


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(Problem, render_problem)
    app.register_error_handler(Failure, render_failure)
    app.register_error_handler(HTTPException, render_http_exception)
    app.register_error_handler(DBAPIError, render_database_error)
    # Raised as they are by the driver (COPY), or by the pool when it is exhausted.
    app.register_error_handler(psycopg.Error, render_database_error)
    app.register_error_handler(PoolTimeout, render_database_error)
    app.register_error_handler(Exception, render_unexpected)
