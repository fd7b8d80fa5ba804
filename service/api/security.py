"""The scope check every /v1 view carries, documented in the OpenAPI as it is enforced."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask_smorest import Blueprint

from service.auth import authorize
from service.extensions import database

F = TypeVar("F", bound=Callable[..., Any])

SECURITY_SCHEME = {"type": "http", "scheme": "bearer", "description": "An API key (see README)."}


def protected(blp: Blueprint, scope: str) -> Callable[[F], F]:
    """Refuse the request unless its API key carries `scope` (401/403 problem+json)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def check_then_call(*args: Any, **kwargs: Any) -> Any:
            with database().sessions() as session:
                authorize(session, scope)
            return view(*args, **kwargs)

        # OpenAPI 3.1 lets a bearer requirement list the role it needs: here, the scope.
        documented = Blueprint.doc(security=[{"ApiKey": [scope]}])(check_then_call)
        documented = blp.alt_response(401, response="UNAUTHORIZED")(documented)
        documented = blp.alt_response(403, response="FORBIDDEN")(documented)
        documented = blp.alt_response("default", response="DEFAULT_ERROR")(documented)
        return documented  # type: ignore[return-value]

    return decorate
