"""What one delivery asks of the data, in the REST API's own record terms.

What the platform mappers (`shopify`, `woocommerce`, `standard`) return, and
`service.webhooks.apply` parses into records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class MappingFailed(Exception):
    """The delivery is authentic and stored, but cannot be turned into records."""


@dataclass
class RecordChanges:
    """REST-shaped records to upsert and ids to erase; `ignored` says why nothing is done."""

    customers: list[dict[str, Any]] = field(default_factory=list)
    # Customers known from an order: stored only if new (or a stub), so their first
    # order fixes their acquisition channel and later orders do not change it.
    first_seen_customers: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    spend: list[dict[str, Any]] = field(default_factory=list)
    erase_customers: list[str] = field(default_factory=list)
    erase_orders: list[str] = field(default_factory=list)
    # Orders a platform brought back (WooCommerce restores trashed orders).
    restore_orders: list[str] = field(default_factory=list)
    ignored: str | None = None


def ignore(reason: str) -> RecordChanges:
    return RecordChanges(ignored=reason)
