"""Liveness and readiness probes, unauthenticated."""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy.exc import SQLAlchemyError

from service.errors import NotReady
from service.extensions import database
from service.migrate import is_at_head

blp = Blueprint("health", __name__, description="Probes for orchestrators.")


class Status(Schema):
    status = fields.String(required=True)


@blp.get("/healthz")
@blp.response(200, Status)
def healthz() -> dict[str, str]:
    """The process is up"""
    return {"status": "ok"}


@blp.get("/readyz")
@blp.response(200, Status)
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")
def readyz() -> dict[str, str]:
    """The database is reachable and its schema is at the newest migration"""
    try:
        ready = is_at_head(database().engine)
    except SQLAlchemyError as exc:
        raise NotReady(f"The database is unreachable: {type(exc).__name__}.") from None
    if not ready:
        raise NotReady("The database schema is not at the newest migration; run `db upgrade`.")
    return {"status": "ready"}
