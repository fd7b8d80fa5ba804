"""Raw records as a client would send them, with overridable fields."""

from __future__ import annotations

from typing import Any


def order(id: str = "o-1", **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": id,
        "customer_id": "c-1",
        "placed_at": "2024-03-01T10:00:00Z",
        "currency": "USD",
        "total": "20.00",
        "status": "completed",
    }
    record.update(fields)
    return {k: v for k, v in record.items() if v is not None}


def customer(id: str = "c-1", **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"id": id, "acquisition_channel": "Google", "country": "pl"}
    record.update(fields)
    return {k: v for k, v in record.items() if v is not None}


def spend(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "channel": "google",
        "amount": "100.00",
        "currency": "USD",
        "date": "2024-03-01",
    }
    record.update(fields)
    return {k: v for k, v in record.items() if v is not None}


def counts(created: int = 0, updated: int = 0, unchanged: int = 0, stale: int = 0) -> dict:
    """The outcome a batch endpoint answers with."""
    return {"created": created, "updated": updated, "unchanged": unchanged, "stale_ignored": stale}
