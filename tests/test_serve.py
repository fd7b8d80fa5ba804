"""The README's run command, for real: `customer-metrics serve` under gunicorn, over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import TEST_SECRETS_KEY
from tests.webhook_payloads import SHOP, SHOPIFY_SECRET, body_of, shopify_headers, shopify_order
from tests.webhook_support import add_sender

SERVE = [sys.executable, "-c", "from service.cli import main; main()", "serve"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _call(url: str, key: str, body: Any = None, request_id: str = "") -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Content-Type", "application/json")
    if request_id:
        request.add_header("X-Request-ID", request_id)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _wait_until_ready(base: str, process: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "serve exited early"
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the service did not become ready within 30 s")


def _serve(cwd: Path, env: dict[str, str]) -> tuple[str, subprocess.Popen[str]]:
    port = _free_port()
    env = {**os.environ, **env, "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"}
    process = subprocess.Popen(
        SERVE, cwd=cwd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    return f"http://127.0.0.1:{port}", process


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    return stderr


def _order() -> dict[str, Any]:
    return {
        "id": "1001",
        "customer_id": "c-1",
        "placed_at": "2024-05-01T14:30:00+02:00",
        "currency": "USD",
        "total": "49.90",
        "status": "completed",
    }


def test_serve_with_no_configuration_migrates_sqlite_prints_a_key_and_answers(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BOOTSTRAP_API_KEY")}
    base, process = _serve(tmp_path, env)
    try:
        _wait_until_ready(base, process)
        assert (tmp_path / "customer-metrics.sqlite3").exists()
    finally:
        stderr = _stop(process)
    key = re.search(r"^\s+(cm_\S+)$", stderr, re.MULTILINE)
    assert key, stderr

    base, process = _serve(tmp_path, env)  # a second start keeps the key and the data
    try:
        _wait_until_ready(base, process)
        assert _call(f"{base}/v1/orders", key.group(1), {"items": [_order()]}) == (
            200,
            {"created": 1, "updated": 0, "unchanged": 0, "stale_ignored": 0},
        )
        status, stored = _call(f"{base}/v1/orders/api/1001", key.group(1), request_id="trace-42")
        assert (status, stored["total"], stored["placed_at"]) == (
            200,
            "49.90",
            "2024-05-01T12:30:00Z",
        )
        assert _call(f"{base}/v1/orders", "cm_wrong")[0] == 401
    finally:
        stderr = _stop(process)
    assert "API keys exist" in stderr
    # Logs are JSON lines; each request's access line carries its request id.
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    access = [r for r in records if r.get("logger") == "service.access"]
    assert {
        "message": "request",
        "method": "GET",
        "path": "/v1/orders/api/1001",
        "status": 200,
        "request_id": "trace-42",
    }.items() <= next(r for r in access if r.get("request_id") == "trace-42").items()


def test_serve_ensures_the_bootstrap_key_on_the_configured_database(tmp_path, app, database_url):
    # `app` is requested so the tables of the shared test database are emptied afterwards.
    key = "cm_bootstrap-key-for-tests-0123456789"
    base, process = _serve(tmp_path, {"DATABASE_URL": database_url, "BOOTSTRAP_API_KEY": key})
    try:
        _wait_until_ready(base, process)
        assert _call(f"{base}/v1/orders", key, {"items": [_order()]})[0] == 200
        assert _call(f"{base}/v1/orders/api/1001", key)[0] == 200
    finally:
        _stop(process)


def _descendant_mappers(pid: int) -> list[int]:
    """Background worker processes (`python -m service.background`) started by `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid and b"-m service.background" in command:
            found.append(int(entry.name))
    return found


def _post_webhook(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_serve_maps_webhook_deliveries_in_a_mapper_process_it_stops_on_exit(
    tmp_path, db, database_url
):
    key = "cm_bootstrap-key-for-tests-0123456789"
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    env = {"DATABASE_URL": database_url, "BOOTSTRAP_API_KEY": key, "SECRETS_KEY": TEST_SECRETS_KEY}
    env.pop("WEBHOOK_MAPPER", None)
    base, process = _serve(tmp_path, env)
    try:
        _wait_until_ready(base, process)
        deadline = time.monotonic() + 15
        while not (mappers := _descendant_mappers(process.pid)):
            assert time.monotonic() < deadline, "no mapper process beside gunicorn"
            time.sleep(0.1)
        body = body_of(shopify_order(4242, guest=True))
        headers = shopify_headers("orders/create", body, "serve-wh-1")
        status, answer = _post_webhook(f"{base}/v1/webhooks/shopify", body, headers)
        assert (status, answer["status"]) == (200, "received")
        deadline = time.monotonic() + 15  # the mapper looks every second
        while _call(f"{base}/v1/orders/shopify:{SHOP}/4242", key)[0] != 200:
            assert time.monotonic() < deadline, "the delivery was not mapped"
            time.sleep(0.1)
    finally:
        _stop(process)
    deadline = time.monotonic() + 15
    while any(Path(f"/proc/{pid}").exists() for pid in mappers):
        assert time.monotonic() < deadline, "the mapper process outlived serve"
        time.sleep(0.1)


def test_serve_refuses_in_one_line_to_start_without_the_key_of_stored_secrets(
    tmp_path, db, database_url
):
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    env = {k: v for k, v in os.environ.items() if k != "SECRETS_KEY"}
    _, process = _serve(tmp_path, {**env, "DATABASE_URL": database_url})
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1
    # The refusal is the last line, after the one saying which database serve uses.
    assert stderr.strip().splitlines()[-1] == (
        "customer-metrics: 1 webhook secret(s) are stored but SECRETS_KEY is not set: set it "
        "to the key they were encrypted with (for secrets stored before encryption, a new "
        "key: make one with `customer-metrics secrets-key`)"
    )
    assert "Traceback" not in stderr
