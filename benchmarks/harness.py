"""What the benchmarks share: the database they own, the server they start, CPU accounting.

Every benchmark talks only to a PostgreSQL server on 127.0.0.1, runs the CLI of the
tree it lives in, and fails (BenchmarkFailed) rather than print figures it cannot
vouch for.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent


class BenchmarkFailed(RuntimeError):
    """Something the benchmark checks did not hold; the figures must not be trusted."""


@dataclass
class Target:
    admin_url: str  # libpq URL of the maintenance database
    db_name: str

    @property
    def libpq_url(self) -> str:
        return self.admin_url.rsplit("/", 1)[0] + "/" + self.db_name

    @property
    def sqlalchemy_url(self) -> str:
        return "postgresql+psycopg://" + self.libpq_url.removeprefix("postgresql://")


def make_target(postgres_url: str, db_name: str) -> Target:
    url = postgres_url
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql://" + url.removeprefix(prefix)
    host = url.split("@")[-1].split("/")[0].split(":")[0]
    if host not in ("127.0.0.1", "localhost"):
        raise SystemExit(f"refusing to benchmark against a non-local server ({host})")
    return Target(url, db_name)


@dataclass
class Bench:
    """What every benchmark sets up first: its command line, database, CLI, env and workdir."""

    command_line: str
    target: Target
    cli: list[str]  # the tree's own `customer-metrics`
    env: dict[str, str]  # for the CLI and the servers it starts
    workdir: Path

    def print_header(self) -> None:
        print(f"command: {self.command_line}")
        print(f"code: {code_revision()}")


def start_bench(
    postgres_url: str,
    db_name: str,
    workdir: str | None,
    workdir_prefix: str,
    unset: tuple[str, ...] = (),
) -> Bench:
    """Stop cleanly on SIGTERM, and point the tree's CLI at a local benchmark database.

    BIND and PORT (and the names in `unset`) are left out of the environment, so the
    servers started listen where the benchmark says.
    """
    signal.signal(signal.SIGTERM, terminate)
    target = make_target(postgres_url, db_name)
    env = {k: v for k, v in os.environ.items() if k not in ("BIND", "PORT", *unset)}
    # Benchmark the tree this file lives in, even if the venv's editable install points elsewhere.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
    )
    env.update(DATABASE_URL=target.sqlalchemy_url, REPORTING_CURRENCY="USD")
    where = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=workdir_prefix))
    where.mkdir(parents=True, exist_ok=True)
    return Bench(shlex.join([sys.executable, *sys.argv]), target, cli_command(), env, where)


def cli_command() -> list[str]:
    """`customer-metrics` next to this interpreter, else the same entry point through -c."""
    cli_path = Path(sys.executable).parent / "customer-metrics"
    if cli_path.exists():
        return [str(cli_path)]
    return [sys.executable, "-c", "from service.cli import main; main()"]


def run(args: list[str], env: dict[str, str], timeout: float, with_stderr: bool = False) -> str:
    """Run a command from the repository root; its stdout (and stderr if asked)."""
    try:
        done = subprocess.run(
            args, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkFailed(f"timed out after {timeout}s: {shlex.join(args)}") from None
    if done.returncode != 0:
        raise BenchmarkFailed(
            f"exit {done.returncode}: {shlex.join(args)}\n"
            f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return done.stdout + done.stderr if with_stderr else done.stdout


def recreate_database(
    target: Target, env: dict[str, str], cli: list[str], timeout: float = 300
) -> None:
    """DROP (forcing connections off), CREATE, and migrate with the tree's own CLI."""
    with psycopg.connect(target.admin_url, autocommit=True, connect_timeout=10) as conn:
        name = sql.Identifier(target.db_name)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
    run([*cli, "db", "upgrade"], env, timeout=timeout)


def drop_database(target: Target) -> None:
    """DROP the benchmark database (forcing connections off); a failure is only reported."""
    try:
        with psycopg.connect(target.admin_url, autocommit=True, connect_timeout=10) as conn:
            name = sql.Identifier(target.db_name)
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
    except psycopg.Error as exc:
        print(f"could not drop {target.db_name}: {exc}", file=sys.stderr)


def create_key(env: dict[str, str], cli: list[str], scope: str = "ingest") -> str:
    """A new API key of one scope, made with the tree's CLI."""
    out = run([*cli, "keys", "create", "--name", "bench", "--scope", scope], env, timeout=60)
    key = out.strip().splitlines()[-1].strip()
    if not key.startswith("cm_"):
        raise BenchmarkFailed(f"could not read the key from: {out!r}")
    return key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchmarkFailed(f"the server exited with {proc.returncode} before it was healthy")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise BenchmarkFailed(f"server not healthy after {timeout}s")


GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"]


@contextmanager
def serving(
    command: list[str], env: dict[str, str], log_path: Path, port: int, timeout: float = 60
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server (output into `log_path`), wait until /healthz answers, stop it after."""
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(port, server, timeout=timeout)
            yield server
        finally:
            stop(server, signal.SIGTERM, timeout=30)


def stop(process: subprocess.Popen[bytes], signum: int, timeout: float) -> None:
    """Ask a process to end with `signum`; kill it if it has not within `timeout` seconds."""
    process.send_signal(signum)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def find_py_spy(parser: argparse.ArgumentParser, profile_dir: str | None) -> str | None:
    """py-spy for --profile-dir (next to the interpreter, else on PATH); None without it."""
    if not profile_dir:
        return None
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if not found:
        parser.error("--profile-dir needs py-spy (pip install py-spy)")
    Path(profile_dir).mkdir(parents=True, exist_ok=True)
    return found


@contextmanager
def profiling(py_spy: str | None, pid: int, output: Path) -> Iterator[None]:
    """Sample `pid` and its subprocesses with py-spy into `output` (collapsed stacks)."""
    if py_spy is None:
        yield
        return
    spy = subprocess.Popen(
        [
            *(py_spy, "record", "--pid", str(pid), "--subprocesses", "--rate", "200"),
            *("--format", "raw", "--output", str(output)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(2)  # let py-spy attach before the load starts
        yield
    finally:
        stop(spy, signal.SIGINT, timeout=60)  # py-spy writes its output on SIGINT


# --------------------------------------------------------------------------- figures


def spread(xs: list[float]) -> tuple[float, float, float]:
    """(median, min, max) of a benchmark's runs: the median is the figure reported."""
    return statistics.median(xs), min(xs), max(xs)


def runs_text(xs: list[float], fmt: str) -> str:
    """Every run's figure, in run order, as the summary tables list them."""
    return ", ".join(format(x, fmt) for x in xs)


def code_revision() -> str:
    """The commit of the benchmarked tree, marked dirty if service/ or migrations/ changed."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "service", "migrations"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"{REPO} (not a git checkout)"
    return f"{REPO} at {sha}{' + uncommitted changes' if dirty else ''}"


def terminate(signum: int, _frame: object) -> None:
    """A SIGTERM handler: unwind through the finally blocks, so started servers stop too."""
    raise SystemExit(f"stopped by signal {signum}")


# --------------------------------------------------------------------------- CPU accounting


def proc_cpu(pid: int) -> float:
    """utime + stime of one process, in seconds (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def descendants(pid: int) -> dict[int, str]:
    """Every process below `pid` (whichever thread started it), with its command line."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                try:
                    with open(f"/proc/{child}/cmdline", "rb") as f:
                        found[child] = f.read().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    found[child] = ""
                frontier.append(child)
    return found


def postgres_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().startswith("postgres"):
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def machine_busy() -> float:
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    return (sum(cpu) - cpu[3] - cpu[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


class CpuSampler:
    """CPU seconds used by PostgreSQL processes (and the `extra` pids) while it runs.

    Backends come and go with connections, so /proc is polled: a process first seen
    mid-run counts from zero, and one that exits loses at most one interval.
    """

    def __init__(self, extra: set[int] | None = None, interval: float = 0.2):
        self.interval = interval
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.extra = set(extra or ())
        self.machine = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._poll(initial=True)
        self._busy = machine_busy()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._poll(initial=False)
        self.machine = machine_busy() - self._busy

    def _poll(self, initial: bool) -> None:
        for pid in [*postgres_pids(), *self.extra]:
            used = proc_cpu(pid)
            if pid not in self.first:
                self.first[pid] = used if initial else 0.0
            if used:
                self.last[pid] = used

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll(initial=False)

    def used(self, pids: set[int] | list[int]) -> float:
        return sum(self.last[p] - self.first.get(p, 0.0) for p in set(pids) & self.last.keys())

    def postgres(self) -> float:
        return self.used(set(self.last) - self.extra)
