"""Run deploy/nginx/default.conf.template for real, in front of a real gunicorn, and check it.

    .venv/bin/python deploy/check_proxy.py          # needs nginx on PATH (apt-get install nginx)

Starts `customer-metrics serve` (SQLite, a temporary directory) and nginx on
127.0.0.1 (ports 18250-18251 unless --port is given), then checks what the
README's production section promises: slow clients do not reach gunicorn,
nginx's refusals are problem+json, the service's own answers pass through.
Bounded: every socket has a timeout and the whole run takes about half a minute.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "deploy" / "nginx" / "default.conf.template"
sys.path.insert(0, str(REPO))

from tests.gunicorn_support import Answer, answer, request, send, serving  # noqa: E402

READ_TIMEOUT = 2
MAX_BODY = 100_000


def render(template: str, values: dict[str, str]) -> str:
    """What the nginx image's envsubst makes of the template: only `values` are replaced."""
    return re.sub(r"\$\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), template)


def main_config(server_block: Path, workdir: Path) -> str:
    """A minimal nginx.conf around the server block, writing only under `workdir`."""
    temp = {n: workdir / n for n in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(exist_ok=True)
    return f"""
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
daemon off;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    include {server_block};
}}
"""


def write_config(workdir: Path, upstream: str, listen: str) -> Path:
    """The rendered template and its nginx.conf in `workdir`; returns the nginx.conf."""
    values = {
        "APP_UPSTREAM": upstream,
        "PROXY_LISTEN": listen,
        "MAX_BODY_BYTES": str(MAX_BODY),
        "REQUEST_READ_TIMEOUT": str(READ_TIMEOUT),
    }
    server_block = workdir / "customer-metrics.conf"
    server_block.write_text(render(TEMPLATE.read_text(), values))
    config = workdir / "nginx.conf"
    config.write_text(main_config(server_block, workdir))
    return config


def nginx_command(config: Path, *args: str) -> list[str]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return [nginx, "-c", str(config), "-e", str(config.parent / "error.log"), *args]


@contextmanager
def nginx_running(config: Path, port: int) -> Iterator[None]:
    process = subprocess.Popen(nginx_command(config), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def exchange(port: int, raw: bytes, timeout: float = 10) -> Answer:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        send(sock, raw)
        return answer(sock)


def _is_problem(got: Answer, status: int) -> bool:
    if got.status != status or got.headers["Content-Type"] != "application/problem+json":
        return False
    return bool(json.loads(got.body)["status"] == status)


def checks(proxy: int) -> list[tuple[str, Callable[[], bool]]]:
    def healthz() -> Answer:
        return exchange(proxy, request("GET", "/healthz", {"X-Request-ID": "via-proxy-1"}))

    def slow_clients_wait_in_nginx() -> bool:
        head = request("POST", "/v1/webhooks/shopify", {"Content-Length": "1000"})
        slow = [socket.create_connection(("127.0.0.1", proxy), timeout=10) for _ in range(16)]
        try:
            for sock in slow:
                sock.sendall(head + b"{")
            time.sleep(0.3)
            started = time.monotonic()
            ok = healthz().status == 200
            return ok and time.monotonic() - started < 1
        finally:
            for sock in slow:
                sock.close()

    def slow_body_is_cut() -> bool:
        # nginx closes a connection that timed out without answering it.
        head = request("POST", "/v1/orders", {"Content-Length": "1000"})
        with socket.create_connection(("127.0.0.1", proxy), timeout=READ_TIMEOUT + 5) as sock:
            started = time.monotonic()
            sock.sendall(head + b"{")
            closed = sock.recv(1) == b""
            return closed and time.monotonic() - started < READ_TIMEOUT + 2

    body = b"x" * (MAX_BODY + 1)
    return [
        (
            "the service answers through the proxy, request id kept",
            lambda: healthz().headers["X-Request-ID"] == "via-proxy-1",
        ),
        ("16 slow clients do not delay /healthz (< 1 s)", slow_clients_wait_in_nginx),
        ("a body that stops arriving: closed after REQUEST_READ_TIMEOUT", slow_body_is_cut),
        (
            "a body over MAX_BODY_BYTES: 413 problem+json",
            lambda: _is_problem(exchange(proxy, request("POST", "/v1/orders", {}, body)), 413),
        ),
        (
            "a chunked body over MAX_BODY_BYTES: 413 problem+json",
            lambda: _is_problem(
                exchange(
                    proxy,
                    request("POST", "/v1/orders", {"Transfer-Encoding": "chunked"})
                    + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body),
                ),
                413,
            ),
        ),
        (
            "a 1 MB request line: 414 problem+json",
            lambda: _is_problem(
                exchange(proxy, b"GET /" + b"a" * 1_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"), 414
            ),
        ),
        (
            "a 60 KB header: 431 problem+json",
            lambda: _is_problem(
                exchange(proxy, request("GET", "/healthz", {"X-Big": "a" * 60_000})), 431
            ),
        ),
        (
            "a bad request line: 400 problem+json",
            lambda: _is_problem(exchange(proxy, b"GARBAGE\r\n\r\n"), 400),
        ),
        (
            "the service's own errors pass through (401 problem+json)",
            lambda: _is_problem(exchange(proxy, request("GET", "/v1/orders", {})), 401),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=18250, help="gunicorn; nginx uses port+1")
    args = parser.parse_args(argv)
    app_port, proxy_port = args.port, args.port + 1
    with tempfile.TemporaryDirectory(prefix="cm-proxy-") as tmp:
        workdir = Path(tmp)
        config = write_config(workdir, f"127.0.0.1:{app_port}", f"127.0.0.1:{proxy_port}")
        subprocess.run(nginx_command(config, "-t", "-q"), check=True)
        env = {
            "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
            "MAX_BODY_BYTES": str(MAX_BODY),
            "REQUEST_READ_TIMEOUT": str(READ_TIMEOUT),
            "WEB_THREADS": "2",
        }
        failed = 0
        with serving(workdir, env, port=app_port), nginx_running(config, proxy_port):
            for name, check in checks(proxy_port):
                try:
                    ok = check()
                except Exception as error:
                    ok, name = False, f"{name} ({type(error).__name__}: {error})"
                failed += not ok
                print(f"{'ok  ' if ok else 'FAIL'}  {name}")
        with nginx_running(config, proxy_port):  # gunicorn has stopped
            got = exchange(proxy_port, request("GET", "/healthz", {}))
            ok = _is_problem(got, 502) and got.headers["Retry-After"] == "1"
            failed += not ok
            print(f"{'ok  ' if ok else 'FAIL'}  gunicorn down: 502 problem+json with Retry-After")
    print(f"{failed} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
