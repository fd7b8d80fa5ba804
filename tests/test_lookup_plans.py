"""Batch look-ups probe the unique index, even on a table whose statistics are stale.

A bulk load into a fresh database is exactly when the planner knows least: a
look-up that falls back to scanning a whole source turns an import quadratic.
"""

from __future__ import annotations

from sqlalchemy import select

from service.models import Customer, Order
from service.sql import restricted_to_keys
from tests.factories import order


def _plan(session, statement) -> str:
    sql = str(statement.compile(session.get_bind(), compile_kwargs={"literal_binds": True}))
    postgres = session.get_bind().dialect.name == "postgresql"
    explain = ("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + sql
    return "\n".join(str(row[-1]) for row in session.connection().exec_driver_sql(explain))


def test_order_lookups_probe_the_unique_index_on_a_fresh_table(api, db):
    batch = [order(f"o-{i}", customer_id=f"c-{i % 50}") for i in range(1000)]
    assert api.post("/v1/orders", batch).status_code == 200
    query = (
        select(Order.external_id, Customer.external_id)
        .join(Customer, Customer.pk == Order.customer_pk)
        .where(Order.source == "api")
    )
    with db.sessions() as session:
        statement = restricted_to_keys(session, query, Order.external_id, ["o-1", "o-2", "x"])
        plan = _plan(session, statement)
    assert "uq_orders_source_external_id" in plan or "sqlite_autoindex_orders_1" in plan, plan
    if "sqlite_autoindex" in plan:
        assert "(source=? AND external_id=?)" in plan, plan
    else:
        assert "Hash Join" not in plan and "Seq Scan on orders" not in plan, plan
        assert "external_id)::text = batch_keys.key" in plan, plan
