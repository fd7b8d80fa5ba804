"""The service runs from its wheel: built, installed in a new venv outside the repository, served.

Building and installing take about 10 s with pip's cache (the dependencies come from the
package index, as for a user), so one venv serves both backends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest

# What `pip wheel` reads: the sources, not the repository's venv, caches or build/.
SOURCES = ("pyproject.toml", "README.md", "alembic.ini", "service", "migrations")
KEY = "cm_wheel-test-key-0123456789abcdefghijklmnopqrstu"


def _pip(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "-q", *args], cwd=cwd, check=True)


# Session-scoped, not module-scoped: pytest runs the tests of each backend together, so
# a module's fixture would be made again for each backend's test (a build of 10 s each).
@pytest.fixture(scope="session")
def wheel(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy of its sources (no stale build/ in the repo)."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        origin = repo_root / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, source / name)
    out = tmp_path_factory.mktemp("dist")
    _pip("wheel", "--no-deps", "--wheel-dir", str(out), str(source), cwd=out)
    (built,) = out.glob("customer_metrics-*.whl")
    return built


@pytest.fixture(scope="session")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv holding the wheel and its dependencies, and nothing of the repository."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    _pip("--python", str(venv / "bin" / "python"), "install", str(wheel), cwd=venv)
    return venv


def _outside_env(**settings: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, **settings}


def test_the_wheel_holds_every_module_and_migration(wheel: Path, repo_root: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {
        str(path.relative_to(repo_root))
        for path in [*(repo_root / "service").rglob("*.py"), *(repo_root / "migrations").rglob("*")]
        if path.is_file() and "__pycache__" not in path.parts
    }
    packaged = {name.replace("service/migrations/", "migrations/", 1) for name in names}
    assert sources - packaged == set(), "add the missing package to pyproject.toml"


def test_the_installed_package_is_the_wheels_not_the_repositorys(venv: Path, tmp_path: Path):
    where = subprocess.run(
        [venv / "bin" / "python", "-c", "import service; print(service.__file__)"],
        cwd=tmp_path,
        env=_outside_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    assert Path(where).is_relative_to(venv), where


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _request(url: str, body: Any = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Authorization", f"Bearer {KEY}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _wait_until_ready(base: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited: {process.communicate()[1]}")
        try:
            if _request(f"{base}/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("the service did not become ready within 30 s")


ORDER = {
    "id": "w-1",
    "customer_id": "c-1",
    "placed_at": "2024-05-01T10:00:00Z",
    "currency": "USD",
    "total": "49.90",
    "status": "completed",
}


def test_serve_from_the_wheel_migrates_a_new_database_and_answers(
    venv: Path, tmp_path: Path, backend: str, empty_database_url: Any
):
    url = empty_database_url(backend, "wheel")
    port = _free_port()
    env = _outside_env(
        DATABASE_URL=url, BOOTSTRAP_API_KEY=KEY, BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="1"
    )
    process = subprocess.Popen(
        [venv / "bin" / "customer-metrics", "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(base, process)
        created = _request(f"{base}/v1/orders", {"items": [ORDER]})
        stored = _request(f"{base}/v1/orders/api/w-1")
        docs_bundle = _request(f"{base}/docs/swagger-ui-bundle.js")
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)

    assert (created[0], json.loads(created[1])["created"]) == (200, 1)
    assert (stored[0], json.loads(stored[1])["total"]) == (200, "49.90")
    assert docs_bundle[0] == 200
    assert list(tmp_path.iterdir()) == []  # nothing written where it was started
