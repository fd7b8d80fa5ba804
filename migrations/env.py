"""Alembic environment: runs on the engine the service hands over, or on DATABASE_URL."""

from alembic import context

from service.config import Settings
from service.db import Base, make_engine
from service.models import *  # noqa: F403  (registers every table on Base.metadata)

config = context.config
engine = config.attributes.get("engine") or make_engine(Settings.from_env().database_url)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
