"""A real `customer-metrics serve` (gunicorn) on a free loopback port, and raw HTTP to it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.test_serve import _wait_until_ready

SERVE = [sys.executable, "-c", "from service.cli import main; main()", "serve"]
KEY = "cm_bootstrap-key-for-tests-0123456789"


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def problem(self) -> dict[str, Any]:
        """The problem+json body, after checking that it is one."""
        assert self.headers["Content-Type"] == "application/problem+json", self.body[:200]
        problem: dict[str, Any] = json.loads(self.body)
        assert problem["status"] == self.status
        return problem


@dataclass
class Server:
    host: str
    port: int

    def connect(self, timeout: float = 10) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(cwd: Path, env: dict[str, str], port: int | None = None) -> Iterator[Server]:
    """Run `customer-metrics serve` in `cwd` until the block ends."""
    port = port or free_port()
    env = {
        **os.environ,
        "BOOTSTRAP_API_KEY": KEY,
        "WEBHOOK_MAPPER": "off",
        "WEB_CONCURRENCY": "1",
        **env,
        "BIND": f"127.0.0.1:{port}",
    }
    process = subprocess.Popen(SERVE, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    try:
        _wait_until_ready(f"http://127.0.0.1:{port}", process)
        yield Server("127.0.0.1", port)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def send(sock: socket.socket, data: bytes) -> None:
    """Send what the server will take; it may stop reading and answer early."""
    with suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def answer(sock: socket.socket) -> Answer:
    """Read one HTTP answer from `sock`."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()
    return Answer(response.status, response.headers, body)


def closed_by_server(sock: socket.socket, within: float = 5) -> bool:
    """Whether the server closes the connection (EOF) within `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """A request's bytes as a client puts them on the wire (Content-Length unless given)."""
    fields = {"Host": "127.0.0.1", **headers}
    if body and "Transfer-Encoding" not in fields:
        fields.setdefault("Content-Length", str(len(body)))
    head = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    return f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode("latin-1") + body


def chunked(body: bytes, size: int = 65536) -> bytes:
    """`body` in Transfer-Encoding: chunked framing."""
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
