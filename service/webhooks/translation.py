"""A stored delivery's body, translated into the records it asks for.

The body is read as JSON, handed to its platform's mapper (`service.webhooks.shopify`,
`woocommerce`, `standard`), which says in the REST API's record terms what it asks
(`RecordChanges`), and every record is parsed as the REST API parses it
(`service.webhooks.apply.parse_changes`). `service.webhooks.mapping` applies the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.ingestion.records import RecordParser
from service.jsonio import loads_exact
from service.webhooks.apply import ParsedChanges, parse_changes
from service.webhooks.record_changes import MappingFailed, RecordChanges
from service.webhooks.shopify import map_shopify
from service.webhooks.standard import map_standard
from service.webhooks.woocommerce import map_woocommerce

MAPPERS: dict[str, Callable[[str, Any, str], RecordChanges]] = {
    "shopify": map_shopify,
    "woocommerce": map_woocommerce,
    "standard": lambda _topic, payload, source: map_standard(payload, source),
}


def translate(
    kind: str, record_source: str, topic: str, body: bytes, parser: RecordParser
) -> ParsedChanges | str:
    """What a delivery asks, parsed; or why it asks nothing (raises when it cannot be mapped)."""
    try:
        payload = loads_exact(body)
    except (RecursionError, ArithmeticError):  # stored before the intake refused such bodies
        raise MappingFailed(
            "the body is JSON this service cannot read (nesting or a number too large)"
        ) from None
    except ValueError as unreadable:
        raise MappingFailed(f"the body is not JSON in UTF-8: {unreadable}") from None
    changes = MAPPERS[kind](topic, payload, record_source)
    if changes.ignored is not None:
        return changes.ignored
    return parse_changes(changes, record_source, parser)
