"""The per-period pass split over several connections gives exactly the one-statement answer.

PostgreSQL only: there the pass over orders may run as several parts of the
table, each on its own connection sharing the reader's snapshot.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from service.db import Database
from service.metrics import MetricsQuery, PeriodReport, answer_in_session, shared_snapshot
from service.metrics.purchase_history import refresh_stale
from tests.factories import order


@pytest.fixture
def postgres_only(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("the pass is split over connections on PostgreSQL only")


def _load(api: Any, rng: random.Random) -> None:
    start = datetime(2023, 1, 1, tzinfo=UTC)
    for batch in range(4):
        items = [
            order(
                f"o-{batch}-{i}",
                customer_id=f"c-{rng.randrange(40)}",
                placed_at=(start + timedelta(hours=rng.randrange(24 * 700))).isoformat(),
                status=rng.choice(["completed", "completed", "completed", "cancelled"]),
                total=f"{rng.randrange(100, 20000) / 100:.2f}",
            )
            for i in range(150)
        ]
        assert api.post("/v1/orders", items).status_code == 200


def _report(db: Database, **parameters: Any) -> dict[str, Any]:
    query = MetricsQuery.create(date(2023, 1, 1), date(2024, 12, 31), **parameters)
    with db.reading() as session:
        body = answer_in_session(session, PeriodReport(query, "USD")).body
    return body


@pytest.mark.parametrize(("parts", "refreshed"), [(2, True), (3, True), (5, True), (3, False)])
def test_a_split_pass_equals_the_single_statement(
    postgres_only, api, db, monkeypatch, parts: int, refreshed: bool
) -> None:
    _load(api, random.Random(parts))
    if refreshed:
        refresh_stale(db)  # updates move rows around the heap, as in real use
    # Unrefreshed, queued customers' neighbours are computed in one part only.
    cases = [{}, {"interval": "week", "tz": "America/New_York"}, {"churn_window_days": 30}]
    monkeypatch.setattr(shared_snapshot, "MAX_PARTS", 1)
    single = [_report(db, **case) for case in cases]
    monkeypatch.setattr(shared_snapshot, "MAX_PARTS", parts)
    monkeypatch.setattr(shared_snapshot, "MIN_PAGES_TO_SPLIT", 0)
    helper_parts: list[int] = []
    run_part = shared_snapshot._rows_in_snapshot

    def counted_part(*arguments: Any) -> list[Any]:
        helper_parts.append(1)
        return run_part(*arguments)

    monkeypatch.setattr(shared_snapshot, "_rows_in_snapshot", counted_part)
    split = [_report(db, **case) for case in cases]
    assert split == single
    assert len(helper_parts) == (parts - 1) * len(cases)  # the pass really was split
    if not refreshed:
        refresh_stale(db)
        monkeypatch.setattr(shared_snapshot, "MAX_PARTS", 1)
        assert [_report(db, **case) for case in cases] == single
    assert sum(p["orders"] for p in single[0]["periods"]) > 0  # there was something to count
