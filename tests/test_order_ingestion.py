"""POST /v1/orders: the upsert rules of METRICS.md §1, over HTTP on both databases."""

from __future__ import annotations

from tests.factories import counts, customer, order


def test_new_orders_are_created_and_read_back_exactly(api):
    response = api.post("/v1/orders", [order("o-1", total="19.99", refunded="5.5")])
    assert response.status_code == 200
    assert response.json == counts(created=1)

    stored = api.get("/v1/orders/api/o-1").json
    assert stored["total"] == "19.99"
    assert stored["refunded"] == "5.50"
    assert stored["placed_at"] == "2024-03-01T10:00:00Z"
    assert stored["customer_id"] == "c-1"
    assert stored["status"] == "completed"
    assert stored["test"] is False


def test_placed_at_is_stored_as_the_utc_instant(api):
    api.post("/v1/orders", [order("o-1", placed_at="2024-03-31T01:30:00+02:00")])
    assert api.get("/v1/orders/api/o-1").json["placed_at"] == "2024-03-30T23:30:00Z"


def test_json_numbers_are_read_exactly_not_through_floats(api):
    # 0.1 + 0.2 as floats is 0.30000000000000004; as decimals it is exact.
    api.post("/v1/orders", [order("o-1", total=0.3, refunded=0.1)])
    stored = api.get("/v1/orders/api/o-1").json
    assert (stored["total"], stored["refunded"]) == ("0.30", "0.10")


def test_resending_the_same_order_changes_nothing(api):
    api.post("/v1/orders", [order("o-1")])
    assert api.post("/v1/orders", [order("o-1")]).json == counts(unchanged=1)


def test_resend_without_updated_at_replaces(api):
    api.post("/v1/orders", [order("o-1", updated_at="2024-03-02T00:00:00Z")])
    response = api.post("/v1/orders", [order("o-1", status="cancelled")])
    assert response.json == counts(updated=1)
    assert api.get("/v1/orders/api/o-1").json["status"] == "cancelled"


def test_older_updated_at_is_ignored_as_stale(api):
    api.post("/v1/orders", [order("o-1", updated_at="2024-03-02T12:00:00Z")])
    response = api.post(
        "/v1/orders", [order("o-1", status="refunded", updated_at="2024-03-02T11:59:59Z")]
    )
    assert response.json == counts(stale=1)
    assert api.get("/v1/orders/api/o-1").json["status"] == "completed"


def test_equal_updated_at_replaces(api):
    api.post("/v1/orders", [order("o-1", updated_at="2024-03-02T12:00:00Z")])
    response = api.post(
        "/v1/orders", [order("o-1", status="refunded", updated_at="2024-03-02T14:00:00+02:00")]
    )
    assert response.json == counts(updated=1)
    assert api.get("/v1/orders/api/o-1").json["status"] == "refunded"


def test_newer_updated_at_replaces(api):
    api.post("/v1/orders", [order("o-1", updated_at="2024-03-02T12:00:00Z")])
    response = api.post(
        "/v1/orders", [order("o-1", refunded="20.00", updated_at="2024-03-03T00:00:00Z")]
    )
    assert response.json == counts(updated=1)
    assert api.get("/v1/orders/api/o-1").json["refunded"] == "20.00"


def test_within_one_batch_later_records_apply_in_order(api):
    batch = [
        order("o-1", status="pending", updated_at="2024-03-01T10:00:00Z"),
        order("o-1", status="completed", updated_at="2024-03-01T11:00:00Z"),
        order("o-1", status="cancelled", updated_at="2024-03-01T10:30:00Z"),
    ]
    assert api.post("/v1/orders", batch).json == counts(created=1, updated=1, stale=1)
    assert api.get("/v1/orders/api/o-1").json["status"] == "completed"


def test_a_version_without_updated_at_lets_the_next_one_in_whatever_its_date(api):
    # Stored: June. The batch's first version has no updated_at, so it replaces June;
    # the second (May) is then judged against a version without a date, and replaces it.
    api.post("/v1/orders", [order("o-1", status="pending", updated_at="2024-06-01T00:00:00Z")])
    batch = [
        order("o-1", status="cancelled"),
        order("o-1", status="refunded", updated_at="2024-05-01T00:00:00Z"),
    ]
    assert api.post("/v1/orders", batch).json == counts(updated=2)
    stored = api.get("/v1/orders/api/o-1").json
    assert (stored["status"], stored["updated_at"]) == ("refunded", "2024-05-01T00:00:00Z")


def test_same_id_in_another_source_is_another_order(api):
    api.post("/v1/orders", [order("o-1"), order("o-1", source="shopify:a.myshopify.com")])
    assert api.get("/v1/orders/api/o-1").status_code == 200
    assert api.get("/v1/orders/shopify:a.myshopify.com/o-1").status_code == 200


def test_an_order_for_an_unknown_customer_creates_a_stub_completed_later(api):
    api.post("/v1/orders", [order("o-1", customer_id="late")])
    stub = api.get("/v1/customers/api/late").json
    assert stub["stub"] is True
    assert stub["acquisition_channel"] == "unknown"

    response = api.post("/v1/customers", [customer("late", acquisition_channel=" Newsletter ")])
    assert response.json == counts(created=1)
    completed = api.get("/v1/customers/api/late").json
    assert completed["stub"] is False
    assert completed["acquisition_channel"] == "newsletter"
    assert completed["country"] == "PL"
    assert api.get("/v1/orders/api/o-1").json["customer_id"] == "late"


def test_an_order_moved_to_another_customer_is_reassigned(api):
    api.post("/v1/orders", [order("o-1", customer_id="a")])
    assert api.post("/v1/orders", [order("o-1", customer_id="b")]).json == counts(updated=1)
    assert api.get("/v1/orders/api/o-1").json["customer_id"] == "b"


def test_a_batch_with_one_bad_record_stores_nothing_and_lists_every_problem(api):
    batch = [
        order("good-1"),
        order("bad-1", total="12.345", status="shipped"),
        order("good-2"),
        {
            "id": "bad-2",
            "customer_id": "c",
            "currency": "EUR",
            "total": "-1",
            "status": "pending",
            "placed_at": "2024-03-01T10:00:00",
        },
        "not an object",
    ]
    response = api.post("/v1/orders", batch)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    problems = {(e["index"], e["id"], e["field"]) for e in response.json["errors"]}
    assert problems == {
        (1, "bad-1", "total"),
        (1, "bad-1", "status"),
        (3, "bad-2", "placed_at"),
        (3, "bad-2", "currency"),
        (3, "bad-2", "total"),
        (4, None, "(record)"),
    }
    assert "3 of 5" in response.json["detail"]
    assert api.get("/v1/orders").json["items"] == []


def test_refunded_above_total_is_refused(api):
    response = api.post("/v1/orders", [order("o-1", total="10.00", refunded="10.01")])
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "refunded"


def test_amounts_follow_the_currency_minor_unit(api):
    # USD has 2 decimal places: a third one is refused, never rounded; trailing zeros are exact.
    assert api.post("/v1/orders", [order("o-1", total="10.001")]).status_code == 422
    assert api.post("/v1/orders", [order("o-1", total="10.000")]).status_code == 200
    assert api.get("/v1/orders/api/o-1").json["total"] == "10.00"


def test_floats_of_nan_and_infinity_are_refused(client, keys):
    body = (
        '{"items": [{"id": "o", "customer_id": "c", "placed_at": "2024-01-01T00:00:00Z", '
        '"currency": "USD", "total": NaN, "status": "completed"}]}'
    )
    response = client.post(
        "/v1/orders", data=body, content_type="application/json", headers=keys.ingest
    )
    assert response.status_code == 400
    assert response.content_type == "application/problem+json"
