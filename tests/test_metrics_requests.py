"""GET /v1/metrics and /v1/metrics/summary as requests: parameters, keys and conditional GETs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import one_backend
from tests.factories import spend
from tests.metrics_support import buy, exact_json, ingest, metrics, periods

METRICS = "/v1/metrics"
SUMMARY = "/v1/metrics/summary"
PROBLEM = "application/problem+json"
MARCH = {"start": "2024-03-01", "end": "2024-03-31"}


def refused(response: Any) -> set[str]:
    """The response is a 422 problem; return the parameters its errors name."""
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.content_type == PROBLEM
    body = exact_json(response)
    assert body["status"] == 422
    assert body["errors"], body
    return {error["field"] for error in body["errors"]}


# Parameter errors


@one_backend
@pytest.mark.parametrize("interval", ["fortnight", "hour", "months"])
def test_an_unknown_interval_is_refused_naming_interval(api, interval):
    assert refused(api.get(METRICS, interval=interval, **MARCH)) == {"interval"}


@one_backend
@pytest.mark.parametrize("path", [METRICS, SUMMARY])
@pytest.mark.parametrize(
    "tz", ["Mars/Olympus_Mons", "Europe/Nowhere", "../../etc/passwd", "+02:00"]
)
def test_an_unknown_time_zone_is_refused_naming_tz(api, path, tz):
    assert refused(api.get(path, tz=tz, **MARCH)) == {"tz"}


@one_backend
@pytest.mark.parametrize("path", [METRICS, SUMMARY])
@pytest.mark.parametrize(
    "tz",
    # Files of the host's zoneinfo directory that ZoneInfo() loads but no IANA zone is:
    # localtime is the machine's own zone, so the answer would depend on the machine.
    ["localtime", "posixrules", "Factory", "right/UTC", "posix/UTC", "posix/Europe/Warsaw"],
)
def test_a_zone_file_that_is_not_an_iana_zone_name_is_refused_naming_tz(api, path, tz):
    assert refused(api.get(path, tz=tz, **MARCH)) == {"tz"}


@pytest.mark.parametrize("path", [METRICS, SUMMARY])
@pytest.mark.parametrize("tz", ["UTC", "Europe/Warsaw", "US/Eastern", "Etc/GMT-14", "GMT"])
def test_iana_zone_names_and_their_links_are_accepted_and_echoed(api, path, tz):
    assert metrics(api, path, tz=tz, **MARCH)["tz"] == tz


@one_backend
@pytest.mark.parametrize("path", [METRICS, SUMMARY])
@pytest.mark.parametrize(
    "value", ["2024-02-30", "2024-13-01", "2024-1-5", "20240301", "2024-03-01T00:00:00Z", "soon"]
)
@pytest.mark.parametrize("name", ["start", "end"])
def test_a_malformed_date_is_refused_naming_it(api, path, name, value):
    params = {**MARCH, name: value}
    assert refused(api.get(path, **params)) == {name}


@one_backend
@pytest.mark.parametrize("path", [METRICS, SUMMARY])
@pytest.mark.parametrize("name", ["start", "end"])
def test_a_missing_date_is_refused_naming_it(api, path, name):
    params = {k: v for k, v in MARCH.items() if k != name}
    assert refused(api.get(path, **params)) == {name}


@one_backend
@pytest.mark.parametrize("path", [METRICS, SUMMARY])
def test_an_end_before_the_start_is_refused_naming_end(api, path):
    assert "end" in refused(api.get(path, start="2024-03-02", end="2024-03-01"))


@pytest.mark.parametrize("path", [METRICS, SUMMARY])
def test_an_end_equal_to_the_start_is_one_day(api, path):
    if path == METRICS:
        found = metrics(api, path, start="2024-03-02", end="2024-03-02", interval="day")["periods"]
    else:
        found = [metrics(api, path, start="2024-03-02", end="2024-03-02")["period"]]
    assert [(p["start"], p["end"]) for p in found] == [
        ("2024-03-02T00:00:00+00:00", "2024-03-03T00:00:00+00:00")
    ]


@one_backend
@pytest.mark.parametrize("path", [METRICS, SUMMARY])
@pytest.mark.parametrize("days", ["0", "3651", "-1", "1.5", "ninety"])
def test_a_churn_window_outside_1_to_3650_days_is_refused(api, path, days):
    assert refused(api.get(path, churn_window_days=days, **MARCH)) == {"churn_window_days"}


@pytest.mark.parametrize("path", [METRICS, SUMMARY])
@pytest.mark.parametrize("days", [1, 3650])
def test_churn_windows_of_1_and_3650_days_are_accepted(api, path, days):
    assert metrics(api, path, churn_window_days=days, **MARCH)["churn_window_days"] == days


def test_1000_periods_are_answered(api):
    # 2024-01-01 + 999 days = 2026-09-26: 1000 days inclusive
    found = periods(api, start="2024-01-01", end="2026-09-26", interval="day")
    assert len(found) == 1000
    assert found[-1]["start"] == "2026-09-26T00:00:00+00:00"


@one_backend
def test_1001_periods_are_refused(api):
    fields = refused(api.get(METRICS, start="2024-01-01", end="2026-09-27", interval="day"))
    assert fields and fields <= {"start", "end", "interval"}


@pytest.mark.parametrize("path", [METRICS, SUMMARY])
@pytest.mark.parametrize(
    ("day", "tz"),
    [
        ("9999-12-31", "UTC"),  # ends at 10000-01-01, which no datetime can hold
        ("9999-12-31", "Pacific/Kiritimati"),
        ("9999-12-31", "America/New_York"),  # begins 10000-01-01 05:00Z
        ("0001-01-01", "Asia/Tokyo"),  # begins 0000-12-31 15:00Z
    ],
)
def test_a_day_at_the_edge_of_the_calendar_is_never_a_server_error(api, path, day, tz):
    response = api.get(path, start=day, end=day, tz=tz)
    assert response.status_code in (200, 422), response.get_data(as_text=True)


# Keys


@one_backend
@pytest.mark.parametrize("path", [METRICS, SUMMARY])
def test_metrics_without_a_key_are_a_401_problem(client, path):
    response = client.get(path, query_string=MARCH)
    assert response.status_code == 401
    assert response.content_type == PROBLEM


@one_backend
@pytest.mark.parametrize("path", [METRICS, SUMMARY])
def test_an_ingest_only_key_may_not_read_metrics(client, keys, path):
    response = client.get(path, query_string=MARCH, headers=keys.ingest)
    assert response.status_code == 403
    assert response.content_type == PROBLEM
    assert "'read'" in exact_json(response)["detail"]


@pytest.mark.parametrize("path", [METRICS, SUMMARY])
def test_a_read_key_may_read_metrics(client, keys, path):
    assert client.get(path, query_string=MARCH, headers=keys.read).status_code == 200


# Conditional GET


def get_if_none_match(api, etag: str, **params: Any) -> Any:
    return api.client.get(
        METRICS, query_string=params, headers={**api.headers, "If-None-Match": etag}
    )


def test_an_unchanged_answer_is_a_304_and_new_data_changes_the_etag(api):
    ingest(api, "/v1/orders", [buy("o-1", "c-1", "2024-03-05T10:00:00Z", "20.00")])
    first = api.get(METRICS, **MARCH)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert etag
    assert api.get(METRICS, **MARCH).headers["ETag"] == etag  # stable while nothing changes

    not_modified = get_if_none_match(api, etag, **MARCH)
    assert not_modified.status_code == 304
    assert not_modified.get_data() == b""

    # o-2: c-2 (new) orders 30.00 in March
    ingest(api, "/v1/orders", [buy("o-2", "c-2", "2024-03-06T10:00:00Z", "30.00")])
    changed = get_if_none_match(api, etag, **MARCH)
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    [mar] = exact_json(changed)["periods"]
    assert (mar["orders"], mar["revenue"], mar["new_customers"]) == (2, "50.00", 2)  # o-1, o-2


def test_a_status_change_or_new_spend_changes_the_answer_and_its_etag(api):
    ingest(
        api,
        "/v1/orders",
        [
            buy("o-1", "c-1", "2024-03-05T10:00:00Z", "20.00"),
            buy("o-2", "c-2", "2024-03-06T10:00:00Z", "30.00", status="pending"),
        ],
    )
    before = api.get(METRICS, **MARCH)
    [mar] = exact_json(before)["periods"]
    assert (mar["orders"], mar["revenue"]) == (1, "20.00")  # o-1; o-2 is pending

    # o-2 completes: it counts, in the period of its placed_at
    ingest(api, "/v1/orders", [buy("o-2", "c-2", "2024-03-06T10:00:00Z", "30.00")])
    completed = get_if_none_match(api, before.headers["ETag"], **MARCH)
    assert completed.status_code == 200
    [mar] = exact_json(completed)["periods"]
    assert (mar["orders"], mar["revenue"]) == (2, "50.00")  # o-1, o-2

    # o-1 is fully refunded but still completed: still an order, net 0
    ingest(
        api, "/v1/orders", [buy("o-1", "c-1", "2024-03-05T10:00:00Z", "20.00", refunded="20.00")]
    )
    refunded = get_if_none_match(api, completed.headers["ETag"], **MARCH)
    assert refunded.status_code == 200
    [mar] = exact_json(refunded)["periods"]
    assert (mar["orders"], mar["revenue"], mar["buyers"]) == (2, "30.00", 2)

    # o-2 becomes cancelled: it stops counting, and c-2 is no longer a customer
    ingest(
        api, "/v1/orders", [buy("o-2", "c-2", "2024-03-06T10:00:00Z", "30.00", status="cancelled")]
    )
    cancelled = get_if_none_match(api, refunded.headers["ETag"], **MARCH)
    assert cancelled.status_code == 200
    [mar] = exact_json(cancelled)["periods"]
    assert (mar["orders"], mar["revenue"], mar["new_customers"]) == (1, "0.00", 1)  # o-1

    # spend arrives: 60.00 in March for 1 new customer (c-1)
    ingest(api, "/v1/acquisition-spend", [spend(amount="60.00", date="2024-03-10")])
    with_spend = get_if_none_match(api, cancelled.headers["ETag"], **MARCH)
    assert with_spend.status_code == 200
    [mar] = exact_json(with_spend)["periods"]
    assert (mar["acquisition_spend"], mar["cac"]) == ("60.00", "60.00")


def test_the_etag_belongs_to_the_parameters(api):
    ingest(api, "/v1/orders", [buy("o-1", "c-1", "2024-03-05T10:00:00Z")])
    monthly = api.get(METRICS, **MARCH)
    daily = get_if_none_match(api, monthly.headers["ETag"], interval="day", **MARCH)
    assert daily.status_code == 200
    assert len(exact_json(daily)["periods"]) == 31
