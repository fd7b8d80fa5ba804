"""The scope check every /v1 view carries, documented in the OpenAPI as it is enforced.

The request's key is its bearer token; what a key is and grants is service/auth.py's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar

from flask import request
from flask_smorest import Blueprint
from sqlalchemy.orm import Session

from service.auth import find_active_key, grants
from service.errors import Forbidden, Unauthenticated
from service.extensions import database, settings
from service.models import ApiKey
from service.rate_limits import effective_limit, refusal, take

F = TypeVar("F", bound=Callable[..., Any])

SECURITY_SCHEME = {"type": "http", "scheme": "bearer", "description": "An API key (see README)."}
RATE_LIMITED_HEADERS = {
    "Retry-After": {
        "description": "Whole seconds until the key's next request would be allowed.",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def protected(blp: Blueprint, scope: str) -> Callable[[F], F]:
    """Refuse the request unless its API key carries `scope` (401/403 problem+json) and
    is within its rate limit (429 with Retry-After)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def check_then_call(*args: Any, **kwargs: Any) -> Any:
            with database().looking_up() as session:
                key = authorize(session, scope)
            _within_rate_limit(key)
            return view(*args, **kwargs)

        # OpenAPI 3.1 lets a bearer requirement list the role it needs: here, the scope.
        documented = Blueprint.doc(security=[{"ApiKey": [scope]}])(check_then_call)
        documented = blp.alt_response(401, response="UNAUTHORIZED")(documented)
        documented = blp.alt_response(403, response="FORBIDDEN")(documented)
        documented = blp.alt_response(429, response="TOO_MANY_REQUESTS")(documented)
        documented = blp.alt_response("default", response="DEFAULT_ERROR")(documented)
        return documented  # type: ignore[return-value]

    return decorate


def _within_rate_limit(key: ApiKey) -> None:
    """Count the request against its key's limit, if the key has one; 429 past it."""
    limit = effective_limit(key, settings().default_rate_limit)
    if limit is None:
        return
    with database().autocommitting() as connection:
        decision = take(connection, key.pk, limit, datetime.now(UTC))
    if not decision.allowed:
        raise refusal(limit, decision)


def bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "This endpoint needs an API key: send 'Authorization: Bearer <key>'.",
            headers={"WWW-Authenticate": 'Bearer realm="customer-metrics"'},
        )
    return token.strip()


def authorize(session: Session, scope: str) -> ApiKey:
    """The request's key, if it exists, is not revoked, and carries `scope`."""
    key = find_active_key(session, bearer_token())
    if key is None:
        raise Unauthenticated(
            "The API key is unknown or revoked.",
            headers={"WWW-Authenticate": 'Bearer realm="customer-metrics", error="invalid_token"'},
        )
    if not grants(key, scope):
        raise Forbidden(
            f"This API key lacks the '{scope}' scope; it has: {', '.join(sorted(key.scope_set))}."
        )
    return key
