"""What the server answers, as problem+json, when a request fails before the app sees it.

gunicorn's own answers to a malformed or oversized request are HTML pages; these
are the same refusals in the shape of every other error of the service.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from gunicorn.http import errors as http

from service.errors import PROBLEM_CONTENT_TYPE, Problem, problem_document
from service.server.deadline import RequestReadTimeout

# Client bytes quoted in a detail (a request line, a header) are cut to this length.
_QUOTED_AT_MOST = 200

# (status, problem code, what was wrong), most specific class first.
_REFUSALS: tuple[tuple[type[Exception] | tuple[type[Exception], ...], int, str, str], ...] = (
    (RequestReadTimeout, 408, "request-timeout", "The request was not received in time"),
    (http.LimitRequestLine, 414, "request-line-too-long", "The request line is too long"),
    (
        http.LimitRequestHeaders,
        431,
        "headers-too-large",
        "The request headers are too large or too many",
    ),
    (
        (http.InvalidRequestLine, http.InvalidRequestMethod, http.InvalidHTTPVersion),
        400,
        "malformed-request-line",
        "The request line is malformed",
    ),
    (
        (
            http.InvalidHeader,
            http.InvalidHeaderName,
            http.ObsoleteFolding,
            http.InvalidSchemeHeaders,
        ),
        400,
        "malformed-header",
        "A request header is malformed",
    ),
    (
        (http.InvalidChunkSize, http.ChunkMissingTerminator, http.InvalidChunkExtension),
        400,
        "malformed-body",
        "The chunked request body is malformed",
    ),
    (
        http.UnsupportedTransferCoding,
        501,
        "unsupported-transfer-coding",
        "The Transfer-Encoding is not supported (send the body as is, or chunked)",
    ),
    (http.ExpectationFailed, 417, "expectation-failed", "The Expect header cannot be met"),
    (http.ForbiddenProxyRequest, 403, "forbidden", "Requests from this address are refused"),
    (
        (http.InvalidProxyLine, http.InvalidProxyHeader, http.InvalidH2CPreface),
        400,
        "malformed-request",
        "The request is malformed",
    ),
)


class ServerProblem(Problem):
    """A refusal by the server itself, with its own status and code."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code = status, code


def problem_for(error: Exception) -> ServerProblem:
    """The refusal of a request gunicorn could not parse (or a 500 for anything else)."""
    if isinstance(error, http.LimitRequestLine) and isinstance(error.max_size, int):
        # gunicorn's message gives how much it read, not how long the line is.
        detail = f"The request line (method, path and query) is longer than {error.max_size} bytes."
        return ServerProblem(414, "request-line-too-long", detail)
    for kinds, status, code, what in _REFUSALS:
        if isinstance(error, kinds):
            return ServerProblem(status, code, f"{what}: {_quoted(error)}.")
    return ServerProblem(
        500, "internal-error", "The server failed to handle this request. It has been logged."
    )


def problem_http_response(problem: Problem) -> bytes:
    """A whole HTTP/1.1 answer for `problem` that closes the connection."""
    body = json.dumps(problem_document(problem.status, problem.code, problem.detail)).encode()
    head = (
        f"HTTP/1.1 {problem.status} {HTTPStatus(problem.status).phrase}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


def _quoted(error: Exception) -> str:
    text = str(error)
    return text if len(text) <= _QUOTED_AT_MOST else text[:_QUOTED_AT_MOST] + "…"
