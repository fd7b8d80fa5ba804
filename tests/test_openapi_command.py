"""`customer-metrics openapi write`, the command the README gives for regenerating openapi.yaml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from service.app import create_app
from service.config import Settings

WRITE = ["openapi", "write", "--format=yaml", "openapi.yaml"]


def test_openapi_write_writes_the_document_the_app_serves_and_touches_no_database(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run(
        [sys.executable, "-c", "from service.cli import main; main()", *WRITE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'unused' / 'db.sqlite3'}"))
    # Not .json: the app reads numbers (multipleOf 0.01) as Decimal, YAML as float.
    served = json.loads(app.test_client().get("/openapi.json").get_data())
    assert yaml.safe_load((tmp_path / "openapi.yaml").read_text()) == served
    assert [path.name for path in tmp_path.iterdir()] == ["openapi.yaml"]
