"""The Alembic migrations, on empty databases of both backends: they build exactly the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    CheckConstraint,
    ForeignKeyConstraint,
    UniqueConstraint,
    inspect,
    text,
)

from service.db import Base, make_engine
from service.migrate import downgrade, head_revisions, is_at_head, upgrade

MODEL_TABLES = {
    "customers",
    "orders",
    "acquisition_spend",
    "api_keys",
    "api_key_rates",
    "background_jobs",
    "data_version",
    "data_changes",
    "metric_reports",
    "stale_purchase_histories",
    "webhook_sources",
    "webhook_secrets",
    "webhook_deliveries",
    "webhook_erasures",
}


@pytest.fixture
def engine(backend, empty_database_url):
    """An engine on a new, empty database of the backend."""
    engine = make_engine(empty_database_url(backend, "migrations"))
    yield engine
    engine.dispose()


def tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def differences(engine) -> list:
    """What `alembic check` would report: the models against the migrated schema."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def test_the_models_are_the_tables_these_tests_expect():
    assert set(Base.metadata.tables) == MODEL_TABLES


def test_upgrading_an_empty_database_creates_exactly_the_model_tables(engine):
    assert tables(engine) == set()
    assert not is_at_head(engine)

    upgrade(engine)

    assert tables(engine) == MODEL_TABLES | {"alembic_version"}
    assert is_at_head(engine)
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
        assert set(versions) == head_revisions()


def test_the_migrated_schema_has_no_differences_from_the_models(engine):
    upgrade(engine)
    assert differences(engine) == []


def named(items) -> set[str]:
    return {item.name for item in items}


def test_the_migrated_schema_names_constraints_and_indexes_as_the_models_do(engine):
    # compare_metadata ignores check constraints and constraint names; a later migration
    # that drops or alters a constraint by its model name needs them to match.
    upgrade(engine)
    inspector = inspect(engine)
    for name, table in Base.metadata.tables.items():
        constraints = table.constraints
        assert {c["name"] for c in inspector.get_check_constraints(name)} == named(
            c for c in constraints if isinstance(c, CheckConstraint)
        ), name
        assert {c["name"] for c in inspector.get_unique_constraints(name)} == named(
            c for c in constraints if isinstance(c, UniqueConstraint)
        ), name
        assert {c["name"] for c in inspector.get_foreign_keys(name)} == named(
            c for c in constraints if isinstance(c, ForeignKeyConstraint)
        ), name
        # PostgreSQL also lists the index behind each unique constraint.
        indexes = {
            i["name"] for i in inspector.get_indexes(name) if not i.get("duplicates_constraint")
        }
        assert indexes == named(table.indexes), name


def test_the_counted_orders_index_is_partial(engine, backend):
    upgrade(engine)
    (index,) = [
        i
        for i in inspect(engine).get_indexes("orders")
        if i["name"] == "ix_orders_counted_placed_at"
    ]
    where = index["dialect_options"][f"{backend}_where"]
    assert "status" in str(where) and "completed" in str(where) and "test" in str(where)


def test_only_unsettled_deliveries_are_indexed_by_status(engine, backend):
    upgrade(engine)
    (index,) = [
        i
        for i in inspect(engine).get_indexes("webhook_deliveries")
        if i["name"] == "ix_webhook_deliveries_unsettled"
    ]
    where = str(index["dialect_options"][f"{backend}_where"])
    assert "received" in where and "failed" in where and "processed" not in where


def test_delivery_bodies_are_compressed_with_lz4_where_postgresql_has_it(engine, backend):
    if backend == "sqlite":
        pytest.skip("SQLite stores bodies as they are")
    upgrade(engine)
    with engine.connect() as connection:
        has_lz4 = connection.scalar(
            text(
                "SELECT 'lz4' = ANY(enumvals) FROM pg_settings"
                " WHERE name = 'default_toast_compression'"
            )
        )
        method = connection.scalar(
            text(
                "SELECT attcompression FROM pg_attribute"
                " WHERE attrelid = 'webhook_deliveries'::regclass AND attname = 'body'"
            )
        )
    assert method == ("l" if has_lz4 else "")


def test_downgrading_to_base_removes_every_table_and_upgrading_again_works(engine):
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO api_keys (name, prefix, key_hash, scopes, created_at) "
                "VALUES ('k', 'cm_x', 'h', 'read', CURRENT_TIMESTAMP)"
            )
        )

    downgrade(engine, "base")

    assert tables(engine) <= {"alembic_version"}
    if "alembic_version" in tables(engine):
        with engine.connect() as connection:
            assert connection.execute(text("SELECT * FROM alembic_version")).all() == []
    assert not is_at_head(engine)

    upgrade(engine)

    assert tables(engine) == MODEL_TABLES | {"alembic_version"}
    assert is_at_head(engine)
    assert differences(engine) == []
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM api_keys")).scalar() == 0
