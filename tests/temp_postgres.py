"""A PostgreSQL cluster of the test's own, on another port, to stop and restart at will.

The shared server on 5432 is never touched: fault tests initdb a cluster into a
temporary directory, with `initdb`/`pg_ctl` from /usr/lib/postgresql/*/bin (or
the PATH). initdb refuses to run as root, so under root the cluster belongs to
the `postgres` OS user (`runuser -u postgres --`). Under CI (CI=true or
REQUIRE_POSTGRES=1) a cluster that cannot be made fails the test; elsewhere it
is skipped with the reason.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# Task 3's ports (18300-18399); the first free one is taken.
PORTS = range(18310, 18400)
OWNER = "postgres"  # the OS user that owns the cluster when the tests run as root


class ClusterUnavailable(Exception):
    """No temporary cluster can be made here (no binaries, no unprivileged user)."""


def _bin_dir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=_version)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise ClusterUnavailable("no initdb under /usr/lib/postgresql/*/bin or on the PATH")


def _version(initdb: Path) -> int:
    name = initdb.parent.parent.name
    return int(name) if name.isdigit() else 0


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ClusterUnavailable(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


class TempCluster:
    """One initdb'd cluster: `url` of its `postgres` database; stop, start, restart."""

    def __init__(self, root: Path, port: int, bin_dir: Path, run_as: list[str]):
        self.root, self.port, self.bin_dir, self.run_as = root, port, bin_dir, run_as
        self.data = root / "data"

    @property
    def url(self) -> str:
        return self.url_of("postgres")

    def url_of(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str, timeout: float = 60) -> None:
        done = subprocess.run(
            [*self.run_as, str(self.bin_dir / command[0]), *command[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise ClusterUnavailable(f"{command[0]} failed: {done.stderr.strip() or done.stdout}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        # fsync off: no OS crash is simulated, and PostgreSQL's own crash (immediate
        # stop) still loses nothing it acknowledged. synchronous_commit stays on.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c full_page_writes=off -c max_connections=40"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "start",
        )

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server; `immediate` is a crash: no checkpoint, recovery at start."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def is_running(self) -> bool:
        status = subprocess.run(
            [*self.run_as, str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True,
            timeout=30,
        )
        return status.returncode == 0

    def start_if_stopped(self) -> None:
        if not self.is_running():
            self.start()

    def restart(self, mode: str = "immediate") -> None:
        self.stop(mode)
        self.start()

    def create_database(self, name: str) -> str:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url_of(name)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.root / "log").read_text().splitlines()[-lines:])
        except OSError:
            return ""


def _make(root: Path) -> TempCluster:
    run_as: list[str] = []
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OWNER)
        except KeyError:
            raise ClusterUnavailable(f"running as root and there is no {OWNER!r} user") from None
        runuser = shutil.which("runuser")
        if runuser is None:
            raise ClusterUnavailable("running as root and there is no runuser")
        shutil.chown(root, OWNER)
        run_as = [runuser, "-u", OWNER, "--"]
    cluster = TempCluster(root, _free_port(), _bin_dir(), run_as)
    cluster.init()
    cluster.start()
    return cluster


def required() -> bool:
    return (
        os.environ.get("CI", "").lower() in ("1", "true")
        or os.environ.get("REQUIRE_POSTGRES") == "1"
    )


@contextmanager
def temp_cluster() -> Iterator[TempCluster]:
    """A running cluster for the block; stopped and deleted afterwards.

    Fails the test under CI when none can be made, and skips it (saying why) elsewhere.
    """
    root = Path(tempfile.mkdtemp(prefix="cm-faults-"))
    cluster = None
    try:
        try:
            cluster = _make(root)
        except (ClusterUnavailable, OSError, subprocess.TimeoutExpired) as error:
            message = f"cannot make a temporary PostgreSQL cluster: {error}"
            if required():
                pytest.fail(message)
            pytest.skip(message)
        yield cluster
    finally:
        if cluster is not None and cluster.is_running():
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
