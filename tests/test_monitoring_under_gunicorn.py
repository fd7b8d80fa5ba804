"""/metrics under real gunicorn: every worker and the background worker counted as one service."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TEST_SECRETS_KEY
from tests.test_background_supervision import KEY, _background_children
from tests.test_serve import SERVE, _call, _free_port, _post_webhook
from tests.webhook_payloads import SHOP, SHOPIFY_SECRET, body_of, shopify_headers, shopify_order
from tests.webhook_support import add_sender

PROBES = 40
MAX_PROBES = 2000


def _start(cwd: Path, given: dict[str, str]) -> tuple[str, subprocess.Popen[str]]:
    port = _free_port()
    env = {
        **os.environ,
        **given,
        "BOOTSTRAP_API_KEY": KEY,
        "SECRETS_KEY": TEST_SECRETS_KEY,
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
    }
    env.pop("WEBHOOK_MAPPER", None)
    if "PROMETHEUS_MULTIPROC_DIR" not in given:
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with (cwd / "serve.log").open("a") as log:
        process = subprocess.Popen(
            SERVE, cwd=cwd, env=env, stderr=log, stdout=subprocess.DEVNULL, text=True
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, (cwd / "serve.log").read_text()
        try:
            if _call(f"{base}/readyz", KEY)[0] == 200:
                return base, process
        except OSError:
            pass
        assert time.monotonic() < deadline, "serve was not ready within 60 s"
        time.sleep(0.1)


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def _scrape(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    request = urllib.request.Request(f"{base}/metrics", headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _answering(directory: Path) -> set[int]:
    """The pids of the workers that have answered a request (their histogram files)."""
    return {int(f.stem.split("_")[1]) for f in directory.glob("histogram_*.db")}


def _probes_counted(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
    labels = frozenset({"route": "/healthz", "method": "GET", "status": "200"}.items())
    return samples.get(("customer_metrics_http_request_duration_seconds_count", labels), 0.0)


def test_metrics_are_summed_over_two_workers_and_the_background_worker(tmp_path, db, database_url):
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    directory = tmp_path / "prometheus"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"left by an earlier run")
    given = {"DATABASE_URL": database_url, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    base, process = _start(tmp_path, given)
    try:
        assert not (directory / "counter_1.db").exists(), "an earlier run's values were kept"
        # A new connection each, until both workers have answered some: which worker
        # accepts a connection is the kernel's choice, and under load one may take many.
        probes = 0
        while probes < PROBES or len(_answering(directory)) < 2:
            assert probes < MAX_PROBES, f"one worker answered all {probes} probes"
            with urllib.request.urlopen(f"{base}/healthz", timeout=10) as response:
                assert response.status == 200
            probes += 1
        body = body_of(shopify_order(5151, guest=True))
        headers = shopify_headers("orders/create", body, "gunicorn-metrics-1")
        assert _post_webhook(f"{base}/v1/webhooks/shopify", body, headers)[0] == 200
        deadline = time.monotonic() + 20
        while _call(f"{base}/v1/orders/shopify:{SHOP}/5151", KEY)[0] != 200:
            assert time.monotonic() < deadline, "the delivery was not mapped"
            time.sleep(0.2)

        scrapes = [_scrape(base) for _ in range(6)]  # answered by either worker
        assert {_probes_counted(s) for s in scrapes} == {probes}
        processed = frozenset({"outcome": "processed"}.items())
        mapped = scrapes[-1][("customer_metrics_webhook_deliveries_mapped_total", processed)]
        assert mapped == 1  # counted by the background worker, a third process
        received = frozenset({"kind": "shopify", "outcome": "received"}.items())
        assert scrapes[-1][("customer_metrics_webhook_deliveries_received_total", received)] == 1
    finally:
        _stop(process)


def test_serve_makes_a_metrics_directory_of_its_own_and_removes_it_on_exit(
    tmp_path, app, database_url
):
    # `app` is requested so the tables of the shared test database are emptied afterwards.
    base, process = _start(tmp_path, {"DATABASE_URL": database_url})
    try:
        (background,) = _background_children(process.pid)
        environ = Path(f"/proc/{background}/environ").read_bytes().split(b"\0")
        (setting,) = [v for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
        directory = Path(setting.split(b"=", 1)[1].decode())
        assert directory.is_dir()
        assert _probes_counted(_scrape(base)) >= 0
    finally:
        _stop(process)
    assert not directory.exists()
