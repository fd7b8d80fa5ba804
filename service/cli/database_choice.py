"""Which database a command works on: said on every run, and never created by mistake.

Connecting to a SQLite file that does not exist creates it empty, so a command run from
the wrong directory would quietly start a second, empty database. Only the commands that
are meant to make one (`serve`, `db upgrade`) may; the others refuse and say what to do.
"""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy.engine import URL, make_url


def sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL names (absolute), or None for another database or memory."""
    if url.get_backend_name() != "sqlite" or url.query.get("uri"):
        return None
    if url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).absolute()


def describe(url: URL) -> str:
    """The URL to show a person: its password hidden, a SQLite path made absolute."""
    path = sqlite_file(url)
    if path is not None:
        url = url.set(database=str(path))
    return url.render_as_string(hide_password=True)


def check_database(database_url: str, may_create: bool) -> None:
    """Say on stderr which database is used; refuse to create a SQLite file unless allowed."""
    url = make_url(database_url)
    click.echo(f"database: {describe(url)}", err=True)
    path = sqlite_file(url)
    if path is None or path.exists():
        return
    if may_create:
        if not path.parent.is_dir():  # SQLite would only say "unable to open database file"
            raise click.ClickException(f"cannot create {path}: no directory {path.parent}")
        return
    raise click.ClickException(
        f"there is no database at {path}, and this command does not create one.\n"
        "Point DATABASE_URL at the database you mean (without it, the database is\n"
        "customer-metrics.sqlite3 in the current directory), e.g.\n"
        "    export DATABASE_URL=sqlite:////absolute/path/to/customer-metrics.sqlite3\n"
        "or create a new, empty one here with `customer-metrics db upgrade`."
    )
