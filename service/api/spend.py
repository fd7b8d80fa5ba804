"""/v1/acquisition-spend: batch upsert and list."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from service import record_views
from service.api.batches import batch_request_body, ingest_request
from service.api.pagination import decode_cursor, page
from service.api.security import protected
from service.extensions import database
from service.schemas.batches import BatchResult, SpendBatch
from service.schemas.pages import LINK_HEADER, PageArgs, SpendPage

blp = Blueprint(
    "acquisition-spend",
    __name__,
    url_prefix="/v1/acquisition-spend",
    description="Money spent acquiring customers, per channel.",
)


@blp.post("")
@protected(blp, "ingest")
@blp.doc(requestBody=batch_request_body(SpendBatch))
@blp.response(200, BatchResult)
@blp.alt_response(400, response="BAD_REQUEST")
@blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
@blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
def upsert_spend() -> dict[str, int]:
    """Add or replace 1-1000 spend records

    A record with an `id` replaces the stored one with that id; a record
    without one is always added. Give `date`, or `start_date` and `end_date`
    (inclusive): the amount is spread evenly over those days.
    """
    return ingest_request("spend")


@blp.get("")
@protected(blp, "read")
@blp.arguments(PageArgs, location="query", as_kwargs=True)
@blp.response(200, SpendPage, headers=LINK_HEADER)
def list_spend(limit: int, cursor: str | None = None) -> Any:
    """List spend records, oldest first, with cursor pagination"""
    with database().looking_up() as session:
        items, after = record_views.list_spend(session, decode_cursor(cursor), limit)
    return page(items, after)
