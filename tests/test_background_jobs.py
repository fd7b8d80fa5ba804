"""The job queue and the one background loop: claims under concurrency, leases, retries,
the loop's wakes, and the web process's thread running every task."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, func, insert, select, text

from service.background import jobs as background_jobs
from service.background.jobs import JOB_KINDS, JobSlot, retry_pause
from service.background.loop import Loop, run_until_stopped
from service.background.tasks import TASKS, PeriodicTask
from service.background.thread import BackgroundThread
from service.db import Database
from service.job_queue import LAPSED, claim, enqueue, fail, finish, renew
from service.models import Job, StaleHistory
from tests.test_background_worker import FakeClock, _database_away

LEASE = timedelta(seconds=60)
T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def jobs_db(db: Database) -> Iterator[Database]:
    """The test database, its job table emptied afterwards (the suite's tables are emptied
    by `app`)."""
    yield db
    with db.transaction() as session:
        session.execute(delete(Job))


def _enqueue(db: Database, kind: str = "echo", **options: Any) -> int:
    with db.transaction() as session:
        return enqueue(session, kind, {"n": 1}, now=options.pop("now", T0), **options)


def _job(db: Database, pk: int) -> Job:
    with db.sessions() as session:
        job = session.get(Job, pk)
        assert job is not None
        return job


def _wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


# --- the queue ----------------------------------------------------------------------------


def test_a_claimed_job_runs_under_a_lease_and_is_done_with_its_result(jobs_db: Database) -> None:
    pk = _enqueue(jobs_db)

    job = claim(jobs_db, {"echo"}, "worker-a", LEASE, T0)

    assert job is not None
    assert (job.pk, job.kind, job.payload, job.attempt) == (pk, "echo", {"n": 1}, 1)
    stored = _job(jobs_db, pk)
    assert (stored.state, stored.lease_owner, stored.lease_until) == (
        "running",
        "worker-a",
        T0 + LEASE,
    )
    assert claim(jobs_db, {"echo"}, "worker-b", LEASE, T0 + timedelta(seconds=1)) is None
    assert finish(jobs_db, job, {"answer": 42}, T0 + timedelta(seconds=2))
    done = _job(jobs_db, pk)
    assert (done.state, done.result, done.lease_owner) == ("done", {"answer": 42}, None)
    assert done.finished_at == T0 + timedelta(seconds=2)


def test_a_job_is_not_claimed_before_it_is_due_nor_by_a_worker_that_does_not_know_its_kind(
    jobs_db: Database,
) -> None:
    _enqueue(jobs_db, run_after=T0 + timedelta(minutes=5))

    assert claim(jobs_db, {"echo"}, "w", LEASE, T0) is None
    assert claim(jobs_db, {"other"}, "w", LEASE, T0 + timedelta(minutes=6)) is None
    assert claim(jobs_db, set(), "w", LEASE, T0 + timedelta(minutes=6)) is None
    assert claim(jobs_db, {"echo"}, "w", LEASE, T0 + timedelta(minutes=6)) is not None


def _race(db: Database, claimers: int) -> list[object]:
    """What each of `claimers` threads, started together, claims."""
    start = threading.Barrier(claimers)
    claimed: list[object] = []

    def race(owner: str) -> None:
        start.wait()
        claimed.append(claim(db, {"echo"}, owner, LEASE, T0))

    racers = [threading.Thread(target=race, args=(f"worker-{n}",)) for n in range(claimers)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    return claimed


def test_two_claimers_racing_for_one_job_one_gets_it(jobs_db: Database) -> None:
    for _ in range(10):
        _enqueue(jobs_db)
        claimed = _race(jobs_db, 2)
        assert len([job for job in claimed if job is not None]) == 1, claimed


def test_many_claimers_on_many_jobs_take_each_job_once(jobs_db: Database) -> None:
    pks = {_enqueue(jobs_db) for _ in range(40)}
    taken: list[int] = []
    start = threading.Barrier(4)

    def drain(owner: str) -> None:
        start.wait()
        while (job := claim(jobs_db, {"echo"}, owner, LEASE, T0)) is not None:
            taken.append(job.pk)

    claimers = [threading.Thread(target=drain, args=(f"worker-{n}",)) for n in range(4)]
    for claimer in claimers:
        claimer.start()
    for claimer in claimers:
        claimer.join()
    assert sorted(taken) == sorted(pks)


def test_a_claimer_skips_a_job_another_is_claiming_without_waiting(
    jobs_db: Database, backend: str
) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite has one writer at a time: a claim waits for the other's commit")
    first, second = _enqueue(jobs_db), _enqueue(jobs_db)
    with jobs_db.engine.connect() as other:
        other.execute(
            text("SELECT pk FROM background_jobs WHERE pk = :pk FOR UPDATE"), {"pk": first}
        )
        began = time.monotonic()
        job = claim(jobs_db, {"echo"}, "worker-b", LEASE, T0)
        other.rollback()
    assert job is not None and job.pk == second
    assert time.monotonic() - began < 2


def test_a_job_whose_worker_died_is_claimed_again_once_its_lease_lapsed(
    jobs_db: Database,
) -> None:
    pk = _enqueue(jobs_db)
    dead = claim(jobs_db, {"echo"}, "worker-a", LEASE, T0)
    assert dead is not None

    assert claim(jobs_db, {"echo"}, "worker-b", LEASE, T0 + LEASE - timedelta(seconds=1)) is None
    again = claim(jobs_db, {"echo"}, "worker-b", LEASE, T0 + LEASE + timedelta(seconds=1))

    assert again is not None and (again.pk, again.attempt, again.owner) == (pk, 2, "worker-b")
    assert not finish(jobs_db, dead, "late", T0 + LEASE * 2)  # its lease is gone
    assert renew(jobs_db, dead, LEASE, T0 + LEASE * 2) is None
    assert finish(jobs_db, again, "on time", T0 + LEASE * 2)
    assert _job(jobs_db, pk).result == "on time"


def test_a_renewed_lease_keeps_the_job_from_other_claimers(jobs_db: Database) -> None:
    _enqueue(jobs_db)
    job = claim(jobs_db, {"echo"}, "worker-a", LEASE, T0)
    assert job is not None

    renewed = renew(jobs_db, job, LEASE, T0 + LEASE / 2)

    assert renewed is not None and renewed.lease_until == T0 + LEASE * 3 / 2
    assert claim(jobs_db, {"echo"}, "worker-b", LEASE, T0 + LEASE * 5 / 4) is None


def test_a_job_whose_worker_died_on_its_last_attempt_fails(jobs_db: Database) -> None:
    pk = _enqueue(jobs_db, max_attempts=1)
    assert claim(jobs_db, {"echo"}, "worker-a", LEASE, T0) is not None

    assert claim(jobs_db, {"echo"}, "worker-b", LEASE, T0 + LEASE * 2) is None

    gone = _job(jobs_db, pk)
    assert (gone.state, gone.error, gone.attempts) == ("failed", LAPSED, 1)


def test_a_failed_attempt_is_retried_after_a_pause_and_fails_for_good_after_the_last(
    jobs_db: Database,
) -> None:
    pk = _enqueue(jobs_db, max_attempts=2)
    first = claim(jobs_db, {"echo"}, "w", LEASE, T0)
    assert first is not None

    assert fail(jobs_db, first, "ValueError: no", timedelta(seconds=10), T0) == "queued"
    assert (_job(jobs_db, pk).state, _job(jobs_db, pk).error) == ("queued", "ValueError: no")
    assert claim(jobs_db, {"echo"}, "w", LEASE, T0 + timedelta(seconds=9)) is None
    second = claim(jobs_db, {"echo"}, "w", LEASE, T0 + timedelta(seconds=11))
    assert second is not None and second.attempt == 2

    assert fail(jobs_db, second, "ValueError: still no", timedelta(seconds=10), T0) == "failed"
    failed = _job(jobs_db, pk)
    assert (failed.state, failed.error, failed.attempts) == ("failed", "ValueError: still no", 2)
    assert claim(jobs_db, {"echo"}, "w", LEASE, T0 + timedelta(hours=1)) is None


def test_retries_wait_longer_each_time_up_to_an_hour() -> None:
    assert [retry_pause(n).total_seconds() for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert retry_pause(30) == timedelta(hours=1)


def test_enqueue_refuses_a_job_that_could_never_run(jobs_db: Database) -> None:
    with jobs_db.transaction() as session:
        with pytest.raises(ValueError, match="kind"):
            enqueue(session, "", {})
        with pytest.raises(ValueError, match="attempt"):
            enqueue(session, "echo", {}, max_attempts=0)


# --- the slot that runs jobs --------------------------------------------------------------


def test_the_slot_records_a_failing_jobs_error_and_retries_it_up_to_its_attempts(
    app: Flask, jobs_db: Database
) -> None:
    calls: list[dict[str, Any]] = []

    def broken(payload: dict[str, Any]) -> None:
        calls.append(payload)
        raise RuntimeError("the model did not converge")

    clock = [T0]
    slot = JobSlot({"fit": broken}, clock=lambda: clock[0])
    pk = _enqueue(jobs_db, "fit", max_attempts=2)
    with app.app_context():
        for attempt in (1, 2):
            job = claim(jobs_db, {"fit"}, slot.owner, LEASE, clock[0])
            assert job is not None and job.attempt == attempt
            slot.run(job)
            clock[0] += timedelta(hours=2)
    stored = _job(jobs_db, pk)
    assert (stored.state, stored.error) == ("failed", "RuntimeError: the model did not converge")
    assert calls == [{"n": 1}, {"n": 1}]


def test_the_slot_runs_a_job_beside_the_loop_and_renews_its_lease_without_the_loop(
    app: Flask, jobs_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    monkeypatch.setattr(background_jobs, "RENEW_EVERY_SECONDS", 0.05)

    def slow(payload: dict[str, Any]) -> dict[str, Any]:
        assert release.wait(10)
        return {"fitted": payload["n"]}

    slot = JobSlot({"fit": slow})
    pk = _enqueue(jobs_db, "fit", now=datetime.now(UTC))
    with app.app_context():
        slot.poll()  # claims it and starts it: poll returns at once
        first_lease = _job(jobs_db, pk).lease_until
        # No further poll: the lease is kept by the job's own keeper, not by the loop.
        _wait_for(
            lambda: _job(jobs_db, pk).lease_until > first_lease,  # type: ignore[operator]
            10,
            "the running job's lease was not renewed",
        )
        release.set()
        _wait_for(lambda: _job(jobs_db, pk).state == "done", 10, "the job did not finish")
    assert _job(jobs_db, pk).result == {"fitted": 1}


def test_stopping_puts_a_running_job_back_in_the_queue_without_counting_the_attempt(
    app: Flask, jobs_db: Database
) -> None:
    release = threading.Event()
    slot = JobSlot({"fit": lambda payload: release.wait(10)})
    pk = _enqueue(jobs_db, "fit", now=datetime.now(UTC))
    with app.app_context():
        slot.poll()
        assert _job(jobs_db, pk).state == "running"
        slot.stop(jobs_db, wait_seconds=0.1)
    stored = _job(jobs_db, pk)
    assert (stored.state, stored.attempts, stored.lease_owner) == ("queued", 0, None)
    release.set()


# --- the loop -----------------------------------------------------------------------------


def test_a_wake_runs_a_task_before_it_is_due_even_one_that_comes_while_it_runs() -> None:
    runs: list[float] = []
    running = threading.Event()
    proceed = threading.Event()

    def task() -> None:
        runs.append(time.monotonic())
        if len(runs) == 2:
            running.set()
            assert proceed.wait(10)

    seldom = PeriodicTask("seldom", 3600.0, task)
    loop = Loop([seldom])
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        _wait_for(lambda: len(runs) == 1, 5, "the loop did not run its task at start")
        loop.wake(seldom)
        assert running.wait(5), "a wake did not run the task"
        loop.wake(seldom)  # while it runs: kept for after
        proceed.set()
        _wait_for(lambda: len(runs) == 3, 5, "a wake during the run was lost")
    finally:
        loop.stop()
        thread.join(5)
    assert not thread.is_alive()


def test_an_outage_that_fails_every_task_is_told_once_each_way(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()

    def away() -> None:
        if clock.now < 10:
            _database_away()

    tasks = [PeriodicTask(name, 1.0, away) for name in ("map", "refresh", "jobs")]
    with caplog.at_level(logging.INFO, logger="service.background.loop"):
        run_until_stopped(tasks, keep_going=lambda: clock.now < 40, clock=clock, sleep=clock.sleep)
    assert [record.getMessage().split(" (")[0] for record in caplog.records] == [
        "map: the database is unavailable",
        "map: working again after 4 failed tries in 15 s",
    ]


def test_every_background_task_has_its_own_name() -> None:
    names = [task.name for task in TASKS]
    assert len(set(names)) == len(names) == 4


# --- the web process's thread hosts every task --------------------------------------------


@pytest.fixture
def background(app: Flask) -> Iterator[BackgroundThread]:
    thread = BackgroundThread(app)
    yield thread
    thread.stop()


def test_the_web_process_thread_refreshes_stale_purchase_histories_without_a_reader(
    background: BackgroundThread, db: Database
) -> None:
    with db.transaction() as session:
        session.execute(insert(StaleHistory), [{"customer_pk": pk} for pk in (1, 2, 3)])

    background.start()

    def queued() -> int:
        with db.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(StaleHistory)) or 0)

    _wait_for(lambda: queued() == 0, 15, "nothing refreshed the queued purchase histories")


def test_the_web_process_thread_runs_queued_jobs(
    background: BackgroundThread, jobs_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(JOB_KINDS, "test: double", lambda payload: payload["n"] * 2)
    pk = _enqueue(jobs_db, "test: double", now=datetime.now(UTC))

    background.start()

    _wait_for(lambda: _job(jobs_db, pk).state == "done", 15, "the queued job did not run")
    assert _job(jobs_db, pk).result == 2
