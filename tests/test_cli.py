"""`customer-metrics keys ...` and `customer-metrics db ...`, run in-process on both databases."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import inspect, select, text

from service.app import create_app
from service.cli import cli
from service.config import Settings
from service.db import make_engine
from service.migrate import upgrade
from service.models import ApiKey


@pytest.fixture(autouse=True)
def _restore_flask_run_from_cli(monkeypatch):
    # FlaskGroup sets FLASK_RUN_FROM_CLI in os.environ; undo it after each test.
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "false")


def run(app, *args: str):
    return app.test_cli_runner().invoke(cli, list(args))


def create(app, name: str = "shop", *scopes: str) -> str:
    """Create a key with the command and return the key it printed."""
    options = [option for scope in scopes for option in ("--scope", scope)]
    result = run(app, "keys", "create", "--name", name, *options)
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()[-1]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def stored_keys(db) -> list[ApiKey]:
    with db.sessions() as session:
        return list(session.scalars(select(ApiKey).order_by(ApiKey.pk)))


ORDER = {
    "id": "o-1",
    "customer_id": "c-1",
    "placed_at": "2024-03-01T10:00:00Z",
    "currency": "USD",
    "total": "1.00",
    "status": "completed",
}


def can_read(client, key: str) -> int:
    return client.get("/v1/orders", headers=bearer(key)).status_code


def can_ingest(client, key: str) -> int:
    return client.post("/v1/orders", json={"items": [ORDER]}, headers=bearer(key)).status_code


# --- keys create -------------------------------------------------------------------------


def test_keys_create_prints_the_key_once_after_saying_it_is_shown_only_once(app, db):
    result = run(app, "keys", "create", "--name", "shop", "--scope", "read")

    assert result.exit_code == 0, result.output
    first, key = result.stdout.splitlines()
    (record,) = stored_keys(db)
    assert first == (f"created key {record.pk} (read); store it now, it is shown only once:")
    assert re.fullmatch(r"cm_[A-Za-z0-9_-]{43}", key)
    assert result.stdout.count(key) == 1
    assert (record.name, record.scopes, record.revoked_at) == ("shop", "read", None)


def test_a_created_key_works_as_a_bearer_token_with_exactly_its_scopes(app, client):
    read_only = create(app, "dashboard", "read")
    ingest_only = create(app, "shop", "ingest")
    default = create(app, "both")
    admin = create(app, "ops", "admin")

    assert (can_read(client, read_only), can_ingest(client, read_only)) == (200, 403)
    assert (can_read(client, ingest_only), can_ingest(client, ingest_only)) == (403, 200)
    assert (can_read(client, default), can_ingest(client, default)) == (200, 200)
    assert (can_read(client, admin), can_ingest(client, admin)) == (200, 200)


def test_keys_create_with_several_scopes_stores_them_all(app, db):
    create(app, "pipeline", "ingest", "read", "ingest")
    assert [k.scopes for k in stored_keys(db)] == ["ingest read"]


def test_only_a_hash_of_the_key_is_stored(app, db):
    key = create(app, "shop")

    with db.engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM api_keys")).all()
    assert len(rows) == 1
    assert not any(key in str(value) for value in rows[0])
    (record,) = stored_keys(db)
    assert record.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert record.prefix == key[:10]


def test_keys_create_refuses_an_unknown_scope_or_a_missing_name(app, db):
    assert run(app, "keys", "create", "--name", "x", "--scope", "write").exit_code == 2
    assert run(app, "keys", "create").exit_code == 2
    assert stored_keys(db) == []


# --- keys list ---------------------------------------------------------------------------


def test_keys_list_shows_each_key_by_prefix_and_never_the_key(app, db):
    shop = create(app, "shop", "ingest")
    dashboard = create(app, "dashboard", "read")
    run(app, "keys", "revoke", "1")

    result = run(app, "keys", "list")

    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["id", "prefix", "scopes", "rate-limit", "created", "revoked", "name"]
    assert len(lines) == 2
    assert lines[0].split()[:3] == ["1", shop[:10] + "…", "ingest"]
    assert lines[0].endswith(" shop")
    assert lines[1].split()[:3] == ["2", dashboard[:10] + "…", "read"]
    assert lines[1].split()[-2:] == ["-", "dashboard"]
    assert re.search(
        r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} +\d{4}-\d{2}-\d{2} \d{2}:\d{2} +shop$", lines[0]
    )
    assert shop not in result.output
    assert dashboard not in result.output


def test_keys_list_with_no_keys_prints_only_the_header(app):
    result = run(app, "keys", "list")
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 1


# --- keys revoke -------------------------------------------------------------------------


def test_a_revoked_key_gets_401_at_once_and_other_keys_keep_working(app, client):
    revoked = create(app, "old")
    kept = create(app, "new")
    assert can_read(client, revoked) == 200

    result = run(app, "keys", "revoke", "1")

    assert result.exit_code == 0, result.output
    assert result.stdout == "revoked 1 key(s)\n"
    response = client.get("/v1/orders", headers=bearer(revoked))
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"
    assert can_ingest(client, revoked) == 401
    assert can_read(client, kept) == 200


def test_a_key_can_be_revoked_by_the_prefix_keys_list_shows(app, client, db):
    key = create(app, "shop")
    listed_prefix = key[:10] + "…"

    assert run(app, "keys", "revoke", listed_prefix).exit_code == 0
    assert can_read(client, key) == 401
    (record,) = stored_keys(db)
    assert record.revoked_at is not None


def test_revoking_an_unknown_or_already_revoked_key_fails_with_a_message(app):
    create(app, "shop")
    assert run(app, "keys", "revoke", "1").exit_code == 0

    again = run(app, "keys", "revoke", "1")
    assert again.exit_code == 1
    assert "Error: no active key '1'" in again.stderr
    unknown = run(app, "keys", "revoke", "cm_nothere")
    assert unknown.exit_code == 1
    assert "Error: no active key 'cm_nothere'" in unknown.stderr


# --- db upgrade / db status --------------------------------------------------------------


@pytest.fixture
def empty_app(backend, empty_database_url):
    """An app on a new, empty database of the backend."""
    app = create_app(Settings(database_url=empty_database_url(backend, "cli_db")))
    yield app
    app.extensions["customer_metrics.db"].engine.dispose()


def table_names(app) -> set[str]:
    return set(inspect(app.extensions["customer_metrics.db"].engine).get_table_names())


def test_db_upgrade_run_as_a_command_prints_one_line_and_no_logs(tmp_path):
    # Run for real: in-process runs have imported and configured logging already.
    command = Path(sys.executable).parent / "customer-metrics"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"}
    done = subprocess.run(
        [str(command), "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120
    )
    said = f"database: sqlite:///{tmp_path / 'fresh.db'}\n"  # which database, and no logs
    assert (done.returncode, done.stdout, done.stderr) == (0, "database at head\n", said)


def test_a_command_on_a_database_behind_the_code_says_to_upgrade_it(tmp_path):
    """Upgrading the code without `db upgrade`: one line that says so, no traceback."""
    command = str(Path(sys.executable).parent / "customer-metrics")
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(make_engine(url), "0007")  # the schema before `changed_at`
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "id,customer_id,placed_at,currency,total,status\n"
        "o-1,c-1,2024-03-01T10:00:00Z,USD,5.00,completed\n"
    )
    done = subprocess.run(
        [command, "import", "orders", str(orders)],
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "customer-metrics: the database's schema is older than this version expects; "
        "run `customer-metrics db upgrade` first"
    )
    assert "Traceback" not in done.stderr


def test_db_status_fails_until_db_upgrade_migrates_to_head(empty_app):
    before = run(empty_app, "db", "status")
    assert before.exit_code == 1
    assert before.stdout == "needs `customer-metrics db upgrade`\n"

    upgraded = run(empty_app, "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert upgraded.stdout == "database at head\n"
    assert table_names(empty_app) >= {"customers", "orders", "acquisition_spend", "api_keys"}

    after = run(empty_app, "db", "status")
    assert after.exit_code == 0
    assert after.stdout == "up to date\n"


def test_db_upgrade_twice_is_harmless(empty_app):
    assert run(empty_app, "db", "upgrade").exit_code == 0
    assert run(empty_app, "db", "upgrade").exit_code == 0
    assert run(empty_app, "db", "status").exit_code == 0


def test_db_downgrade_to_base_drops_the_schema_and_status_says_so(empty_app):
    run(empty_app, "db", "upgrade")

    result = run(empty_app, "db", "downgrade", "base")

    assert result.exit_code == 0, result.output
    assert result.stdout == "database at base\n"
    assert table_names(empty_app) <= {"alembic_version"}
    assert run(empty_app, "db", "status").exit_code == 1


def test_the_command_reads_database_url_from_the_environment(backend, empty_database_url):
    # As installed, the group's own app factory reads the settings from the environment;
    # it is wrapped only to dispose of the app's engine afterwards.
    url = empty_database_url(backend, "cli_env")
    made = []

    def create_from_env():
        made.append(cli.create_app())
        return made[-1]

    try:
        result = CliRunner().invoke(
            cli,
            ["db", "upgrade"],
            env={"DATABASE_URL": url},
            obj=ScriptInfo(create_app=create_from_env),
        )
        assert result.exit_code == 0, result.output
        assert table_names(made[0]) >= {"customers", "orders", "acquisition_spend", "api_keys"}
    finally:
        for app in made:
            app.extensions["customer_metrics.db"].engine.dispose()
