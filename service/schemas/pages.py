"""List endpoints: query arguments and cursor-paginated pages."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from service.schemas.numbers import WholeNumber
from service.schemas.records import CustomerOut, OrderOut, SpendOut
from service.schemas.rules import STORABLE_PATTERN

# Unpadded base64url, as `encode_cursor` writes it.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]*$"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class PageArgs(Schema):
    limit = WholeNumber(load_default=DEFAULT_LIMIT, validate=validate.Range(1, MAX_LIMIT))
    cursor = fields.String(
        metadata={
            "description": "Opaque: the `next_cursor` of the previous page (422 for any other).",
            "pattern": CURSOR_PATTERN,
        }
    )


class CustomerListArgs(PageArgs):
    source = fields.String(
        metadata={"description": "Only customers of this source.", "pattern": STORABLE_PATTERN}
    )


class OrderListArgs(PageArgs):
    source = fields.String(
        metadata={"description": "Only orders of this source.", "pattern": STORABLE_PATTERN}
    )
    customer_id = fields.String(
        metadata={
            "description": "Only this customer's orders (of `source`, default `api`).",
            "pattern": STORABLE_PATTERN,
        }
    )


def _page_of(record: type[Schema], name: str) -> type[Schema]:
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(record), required=True),
            "next_cursor": fields.String(
                required=True, allow_none=True, metadata={"description": "null on the last page."}
            ),
        },
        name=name,
    )


CustomerPage = _page_of(CustomerOut, "CustomerPage")
OrderPage = _page_of(OrderOut, "OrderPage")
SpendPage = _page_of(SpendOut, "SpendPage")


LINK_HEADER = {
    "Link": {
        "description": 'RFC 8288 link to the next page, `<url>; rel="next"`; absent on the last.',
        "schema": {"type": "string"},
    }
}
