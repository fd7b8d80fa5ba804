"""Schema migrations: the schema is created and changed only through Alembic.

Alembic is imported by each function, not by this module: it takes a quarter of
a second to import, which every CLI command and worker would otherwise pay.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

if TYPE_CHECKING:
    from alembic.config import Config


@cache
def migrations_dir() -> Path:
    """Where the Alembic scripts are: inside the package when installed from a wheel
    (pyproject.toml maps them there), else at the top of the repository, beside alembic.ini."""
    packaged = Path(__file__).resolve().parent / "migrations"
    return packaged if packaged.is_dir() else packaged.parent.parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    """An Alembic config that runs on `engine`'s database."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision` (the newest by default)."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to `revision` ("base" removes everything)."""
    from alembic import command

    command.downgrade(alembic_config(engine), revision)


@cache
def head_revisions() -> frozenset[str]:
    """The revisions the code expects the database to be at."""
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory(str(migrations_dir())).get_heads())


def is_at_head(engine: Engine) -> bool:
    """True when the database's schema is exactly what this code was written for."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        connection.execution_options(read_only=True)  # SQLite: no write lock (service/db.py)
        current = MigrationContext.configure(connection).get_current_heads()
    return frozenset(current) == head_revisions()
