"""Reading a JSON batch request and handing it to the ingestion layer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import request
from marshmallow import Schema

from service.errors import UnsupportedMediaType
from service.extensions import database, record_parser
from service.failures import InvalidInput, MalformedInput
from service.ingestion.batch import KINDS, ingest_batch
from service.jsonio import loads_exact
from service.schemas.batches import MAX_BATCH


def json_body() -> Any:
    """The request body parsed as exact JSON; 415 unless it is declared JSON, 400 if malformed."""
    if not request.mimetype or not (
        request.mimetype == "application/json" or request.mimetype.endswith("+json")
    ):
        raise UnsupportedMediaType(
            f"Send the body as application/json (got {request.mimetype or 'no Content-Type'})."
        )
    try:
        return loads_exact(request.get_data(cache=False))
    except ValueError as exc:  # JSONDecodeError and bad UTF-8 are both ValueErrors
        raise MalformedInput(f"The body is not valid JSON: {exc}") from None
    except (RecursionError, ArithmeticError):  # absurd nesting; a number Decimal cannot hold
        raise MalformedInput(
            "The body is JSON this service cannot read (nesting or a number too large)."
        ) from None


def batch_items(body: Any) -> list[Any]:
    """The `items` list of a batch body, 1 to MAX_BATCH long."""
    if not isinstance(body, dict):
        raise _items_problem("the body must be a JSON object with an 'items' list")
    unknown = sorted(set(body) - {"items"})
    if unknown:
        raise InvalidInput(
            "The body has fields this endpoint does not know.",
            errors=[{"field": name, "message": "unknown field"} for name in unknown],
        )
    items = body.get("items")
    if not isinstance(items, list):
        raise _items_problem("is required and must be a list of records")
    if not 1 <= len(items) <= MAX_BATCH:
        raise _items_problem(f"must hold 1 to {MAX_BATCH} records, got {len(items)}")
    return items


def ingest_request(kind_name: str) -> dict[str, int]:
    """Validate and store the request's batch (atomically); the outcome counts."""
    items = batch_items(json_body())
    now = datetime.now(UTC)
    outcome = ingest_batch(database(), KINDS[kind_name], record_parser(), items, now)
    return outcome.as_dict()


def batch_request_body(schema: type[Schema]) -> dict[str, Any]:
    """The requestBody document of a batch endpoint (parsed by hand for speed and exactness)."""
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _items_problem(message: str) -> InvalidInput:
    return InvalidInput(f"items {message}.", errors=[{"field": "items", "message": message}])
