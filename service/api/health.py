"""Liveness and readiness probes, unauthenticated."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy.exc import SQLAlchemyError

from service.errors import NotReady
from service.extensions import database, settings
from service.migrate import is_at_head
from service.webhooks.backlog import oldest_unmapped_seconds

blp = Blueprint("health", __name__, description="Probes for orchestrators.")


class Status(Schema):
    status = fields.String(required=True)


class Readiness(Status):
    oldest_unmapped_delivery_seconds = fields.Float(
        required=True,
        metadata={
            "description": "How long the oldest webhook delivery not yet mapped has "
            "waited (0: none waits)."
        },
    )


@blp.get("/healthz")
@blp.response(200, Status)
def healthz() -> dict[str, str]:
    """The process is up"""
    return {"status": "ok"}


@blp.get("/readyz")
@blp.response(200, Readiness)
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")
def readyz() -> dict[str, Any]:
    """The database is reachable, its schema is the newest, and webhook deliveries get mapped

    503 once a delivery waited over READYZ_MAX_MAPPING_LAG_SECONDS to be mapped.
    """
    try:
        ready = is_at_head(database().engine)
        if ready:
            with database().looking_up() as session:
                lag = oldest_unmapped_seconds(session, datetime.now(UTC))
    except SQLAlchemyError as exc:
        raise NotReady(f"The database is unreachable: {type(exc).__name__}.") from None
    if not ready:
        raise NotReady("The database schema is not at the newest migration; run `db upgrade`.")
    limit = settings().readyz_max_mapping_lag_seconds
    if limit and lag > limit:
        raise NotReady(
            f"Webhook deliveries are not being mapped: the oldest has waited {lag:.0f} s, "
            f"more than READYZ_MAX_MAPPING_LAG_SECONDS ({limit} s); is the background "
            "worker (`customer-metrics worker`) running?"
        )
    return {"status": "ready", "oldest_unmapped_delivery_seconds": round(lag, 3)}
