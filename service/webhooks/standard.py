"""Standard Webhooks deliveries: {"type": "<record>.upserted", "data": <the REST record>}.

`map_standard` is the platform mapper `service.webhooks.translation` hands a stored
Standard Webhooks delivery's payload to; the record is already in REST terms.
"""

from __future__ import annotations

from typing import Any

from service.webhooks.record_changes import MappingFailed, RecordChanges

TYPES = {"customer.upserted": "customers", "order.upserted": "orders", "spend.upserted": "spend"}


def map_standard(payload: Any, record_source: str) -> RecordChanges:
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise MappingFailed('the body must be {"type": ..., "data": {...}}')
    kind = TYPES.get(payload.get("type"))  # type: ignore[arg-type]
    if kind is None:
        raise MappingFailed(f"type must be one of {', '.join(TYPES)}")
    record = dict(payload["data"])
    # The sender fixes the source of what it sends (spend has no source).
    if kind != "spend" and record.setdefault("source", record_source) != record_source:
        raise MappingFailed(f"data.source must be {record_source!r} for this sender")
    changes = RecordChanges()
    getattr(changes, kind).append(record)
    return changes
