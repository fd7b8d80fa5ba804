"""The real command line says which database it uses and makes no new SQLite file by mistake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

CLI = [sys.executable, "-c", "from service.cli import main; main()"]


def _run(
    cwd: Path, *args: str, database_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)  # run from anywhere
    return subprocess.run(
        [*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "command",
    [("keys", "list"), ("db", "status"), ("webhooks", "list"), ("metrics", "rebuild")],
    ids=" ".join,
)
def test_a_command_run_where_there_is_no_database_refuses_and_creates_none(tmp_path, command):
    result = _run(tmp_path, *command)

    assert result.returncode == 1, result.stderr
    expected = tmp_path / "customer-metrics.sqlite3"
    assert f"there is no database at {expected}" in result.stderr
    assert "DATABASE_URL" in result.stderr
    assert "customer-metrics db upgrade" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_db_upgrade_creates_the_database_it_names_and_then_other_commands_use_it(tmp_path):
    created = _run(tmp_path, "db", "upgrade")

    assert created.returncode == 0, created.stderr
    expected = tmp_path / "customer-metrics.sqlite3"
    assert created.stderr.splitlines()[0] == f"database: sqlite:///{expected}"
    assert expected.exists()
    listed = _run(tmp_path, "keys", "list")
    assert (listed.returncode, listed.stderr) == (0, f"database: sqlite:///{expected}\n")


def test_a_relative_sqlite_url_is_shown_as_the_absolute_file(tmp_path):
    (tmp_path / "data").mkdir()
    result = _run(tmp_path, "db", "upgrade", database_url="sqlite:///data/metrics.sqlite3")

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == f"database: sqlite:///{tmp_path}/data/metrics.sqlite3"


def test_db_upgrade_into_a_directory_that_does_not_exist_says_so(tmp_path):
    result = _run(tmp_path, "db", "upgrade", database_url="sqlite:///no-such-dir/m.sqlite3")

    assert result.returncode == 1
    missing = tmp_path / "no-such-dir"
    assert result.stderr.splitlines()[-1] == (
        f"Error: cannot create {missing / 'm.sqlite3'}: no directory {missing}"
    )


def test_every_command_says_which_database_it_uses_with_the_password_hidden(
    tmp_path, backend, database_url
):
    # PostgreSQL here trusts local connections, so any password gets in: the point is
    # that it never reaches the terminal.
    url = make_url(database_url)
    if backend == "postgresql":
        url = url.set(password="s3cret-pass")
    shown = url.render_as_string(hide_password=True)

    for command in (("keys", "list"), ("db", "status")):
        result = _run(tmp_path, *command, database_url=url.render_as_string(hide_password=False))
        assert result.returncode == 0, result.stderr
        assert result.stderr.splitlines() == [f"database: {shown}"], command
        assert "s3cret-pass" not in result.stdout + result.stderr
