"""Reads of stored records never wait for a writer: a key check or a page is no write.

On SQLite a plain session begins with BEGIN IMMEDIATE, which waits for the one
write lock (up to the 10 s busy timeout, then 503); reads must begin deferred.
On PostgreSQL a writer's row locks never block readers; the test holds them too.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from service.db import Database
from tests.factories import customer, order, spend

READS = [
    "/v1/customers",
    "/v1/customers/api/c-1",
    "/v1/orders",
    "/v1/orders/api/o-1",
    "/v1/acquisition-spend",
    "/readyz",
]


@pytest.mark.parametrize("path", READS)
def test_a_read_is_answered_while_a_writer_holds_its_transaction_open(
    api, db: Database, path: str
) -> None:
    assert api.post("/v1/customers", [customer("c-1")]).status_code == 200
    assert api.post("/v1/orders", [order("o-1", customer_id="c-1")]).status_code == 200
    assert api.post("/v1/acquisition-spend", [spend()]).status_code == 200

    with db.transaction() as writer:  # SQLite: holds the write lock; PostgreSQL: row locks
        writer.execute(text("UPDATE api_keys SET name = name"))
        writer.execute(text("UPDATE orders SET total_minor = total_minor"))
        response = api.get(path)

    assert response.status_code == 200, response.get_data(as_text=True)
