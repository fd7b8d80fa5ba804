"""The PostgreSQL staging table survives a rolled-back first use on the same connection."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.ingestion.orders import upsert_orders
from service.ingestion.records import RecordParser
from tests.factories import order


def test_a_batch_after_a_rolled_back_batch_on_the_same_connection_is_stored(db):
    parser = RecordParser("USD")
    now = datetime.now(UTC)
    db.engine.dispose()  # start from a fresh connection: no staging table yet
    with pytest.raises(RuntimeError), db.transaction() as session:
        upsert_orders(session, [parser.order(order("o-1"))], now)
        raise RuntimeError("the request failed after staging")
    with db.transaction() as session:
        outcome = upsert_orders(session, [parser.order(order("o-2"))], now)
    assert outcome.created == 1
