"""/v1/customers: batch upsert, read back, list, erase."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask_smorest import Blueprint

from service import record_views
from service.api.batches import batch_request_body, ingest_request
from service.api.pagination import decode_cursor, page
from service.api.security import protected
from service.errors import NotFound
from service.extensions import database
from service.ingestion import erasure
from service.schemas.batches import BatchResult, CustomerBatch
from service.schemas.pages import LINK_HEADER, CustomerListArgs, CustomerPage
from service.schemas.records import CustomerOut
from service.transient import retrying

blp = Blueprint("customers", __name__, url_prefix="/v1/customers", description="Customers.")


@blp.post("")
@protected(blp, "ingest")
@blp.doc(requestBody=batch_request_body(CustomerBatch))
@blp.response(200, BatchResult)
@blp.alt_response(400, response="BAD_REQUEST")
@blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
@blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
def upsert_customers() -> dict[str, int]:
    """Upsert 1-1000 customers by (source, id)

    The batch is atomic: if any record is invalid nothing is stored and the 422
    answer lists every problem by index, id and field. A record whose
    `updated_at` is older than the stored one is ignored (`stale_ignored`).
    """
    return ingest_request("customers")


@blp.get("")
@protected(blp, "read")
@blp.arguments(CustomerListArgs, location="query", as_kwargs=True)
@blp.response(200, CustomerPage, headers=LINK_HEADER)
def list_customers(limit: int, cursor: str | None = None, source: str | None = None) -> Any:
    """List customers, oldest first, with cursor pagination (Link: rel="next")"""
    with database().looking_up() as session:
        items, after = record_views.list_customers(session, decode_cursor(cursor), limit, source)
    return page(items, after)


@blp.get("/<source>/<path:customer_id>")
@protected(blp, "read")
@blp.response(200, CustomerOut)
@blp.alt_response(404, response="NOT_FOUND")
def get_customer(source: str, customer_id: str) -> dict[str, Any]:
    """Read back one customer"""
    with database().looking_up() as session:
        found = record_views.get_customer(session, source, customer_id)
    if found is None:
        raise NotFound(f"No customer {customer_id!r} in source {source!r}.")
    return found


@blp.delete("/<source>/<path:customer_id>")
@protected(blp, "ingest")
@blp.response(204)
@blp.alt_response(404, response="NOT_FOUND")
def erase_customer(source: str, customer_id: str) -> None:
    """Erase a customer and all of their orders (a shop's erasure request)"""

    def erase() -> bool:
        with database().transaction() as session:
            return erasure.erase_customer(session, source, customer_id, datetime.now(UTC))

    # It deletes rows concurrent batches may be writing: a deadlock is run again.
    erased = retrying(erase, what="an erasure")
    if not erased:
        raise NotFound(f"No customer {customer_id!r} in source {source!r}.")
