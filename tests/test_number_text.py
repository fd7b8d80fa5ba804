"""Whole numbers read from text outside the HTTP API (options, settings, key ids): ASCII
digits only, as in the API (tests/test_parameters.py walks its integer parameters)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from service.auth import create_key, revoke_key
from service.cli import cli
from service.config import ConfigError, Settings
from service.models import ApiKey
from tests.test_csv_import import csv_file

# int() reads all of these; "_" between digits, spaces, Arabic-Indic 10, full-width 10.
ODD_NUMBERS = ["1_0", " 10", "10 ", "\u0661\u0660", "\uff11\uff10"]
_ARABIC_INDIC = str.maketrans("0123456789", "".join(chr(0x660 + d) for d in range(10)))


@pytest.fixture(autouse=True)
def _restore_flask_run_from_cli(monkeypatch):
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "false")


@pytest.mark.parametrize("text", ODD_NUMBERS)
def test_the_metrics_command_refuses_an_odd_churn_window(app, text):
    result = app.test_cli_runner().invoke(
        cli,
        ["metrics", "--start", "2024-01-01", "--end", "2024-01-31", "--churn-window-days", text],
    )
    assert result.exit_code == 2, result.output
    assert "--churn-window-days" in result.output and "digits 0-9" in result.output


@pytest.mark.parametrize("text", ODD_NUMBERS)
def test_the_import_command_refuses_an_odd_batch_size(app, tmp_path, text):
    path = csv_file(tmp_path, "id\nc-1\n")
    result = app.test_cli_runner().invoke(
        cli, ["import", "customers", str(path), "--batch-size", text]
    )
    assert result.exit_code == 2, result.output
    assert "digits 0-9" in result.output


@pytest.mark.parametrize("text", ODD_NUMBERS)
def test_an_odd_max_body_bytes_is_a_configuration_error(text):
    with pytest.raises(ConfigError, match="MAX_BODY_BYTES"):
        Settings.from_env({"MAX_BODY_BYTES": text})


def test_a_key_id_in_other_digits_revokes_nothing(db):
    now = datetime.now(UTC)
    with db.transaction() as session:
        key, _ = create_key(session, "k", ["read"], now)
        session.flush()
        pk = key.pk
    with db.transaction() as session:
        assert revoke_key(session, str(pk).translate(_ARABIC_INDIC), now) == 0
    with db.sessions() as session:
        assert session.scalar(select(ApiKey.revoked_at).where(ApiKey.pk == pk)) is None
