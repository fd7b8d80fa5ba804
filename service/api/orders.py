"""/v1/orders: batch upsert, read back, list."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from service import record_views
from service.api.batches import batch_request_body, ingest_request
from service.api.pagination import decode_cursor, page
from service.api.security import protected
from service.errors import NotFound
from service.extensions import database
from service.schemas.batches import BatchResult, OrderBatch
from service.schemas.pages import LINK_HEADER, OrderListArgs, OrderPage
from service.schemas.records import OrderOut

blp = Blueprint("orders", __name__, url_prefix="/v1/orders", description="Orders.")


@blp.post("")
@protected(blp, "ingest")
@blp.doc(requestBody=batch_request_body(OrderBatch))
@blp.response(200, BatchResult)
@blp.alt_response(400, response="BAD_REQUEST")
@blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
@blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
def upsert_orders() -> dict[str, int]:
    """Upsert 1-1000 orders by (source, id)

    Amounts are exact decimals (strings or JSON numbers) in the reporting
    currency. An order may name a customer not sent yet: a stub customer is
    created and completed when its own record arrives. The batch is atomic.
    """
    return ingest_request("orders")


@blp.get("")
@protected(blp, "read")
@blp.arguments(OrderListArgs, location="query", as_kwargs=True)
@blp.response(200, OrderPage, headers=LINK_HEADER)
def list_orders(
    limit: int,
    cursor: str | None = None,
    source: str | None = None,
    customer_id: str | None = None,
) -> Any:
    """List orders, oldest first, with cursor pagination (Link: rel="next")"""
    with database().looking_up() as session:
        items, after = record_views.list_orders(
            session, decode_cursor(cursor), limit, source, customer_id
        )
    return page(items, after)


@blp.get("/<source>/<path:order_id>")
@protected(blp, "read")
@blp.response(200, OrderOut)
@blp.alt_response(404, response="NOT_FOUND")
def get_order(source: str, order_id: str) -> dict[str, Any]:
    """Read back one order"""
    with database().looking_up() as session:
        found = record_views.get_order(session, source, order_id)
    if found is None:
        raise NotFound(f"No order {order_id!r} in source {source!r}.")
    return found
