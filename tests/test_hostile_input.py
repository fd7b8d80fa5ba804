"""Input that once slipped past validation: it now gets a clear 4xx, never a 500 or a rounding."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from service.money import AmountError, parse_minor_units
from tests.factories import customer, order


def test_an_amount_longer_than_decimal_precision_is_refused_not_rounded(api):
    response = api.post("/v1/orders", [order("o-1", total="1.000000000000000000000000000001")])
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "total"
    assert api.get("/v1/orders/api/o-1").status_code == 404


def test_a_long_json_number_is_refused_not_rounded(client, keys):
    body = (
        '{"items": [{"id": "o-1", "customer_id": "c", "placed_at": "2024-01-01T00:00:00Z",'
        ' "currency": "USD", "total": 5.000000000000000000000000000009, "status": "completed"}]}'
    )
    response = client.post(
        "/v1/orders", data=body, content_type="application/json", headers=keys.ingest
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    "text", ["0.999999999999999999999999999999", "12.0000000000000000000000000001"]
)
def test_near_whole_amounts_are_not_rounded_up(text):
    with pytest.raises(AmountError):
        parse_minor_units(text, 2, "USD")


@pytest.mark.parametrize("placed_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_an_instant_outside_the_utc_calendar_is_a_field_error(api, placed_at):
    response = api.post("/v1/orders", [order("o-1", placed_at=placed_at)])
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "placed_at"


@pytest.mark.parametrize(
    "body",
    ["[" * 50000, '{"items": [{"total": 1e9999999999999999999}]}'],
    ids=["deep-nesting", "huge-exponent"],
)
def test_json_the_service_cannot_read_is_a_400(client, keys, body):
    response = client.post(
        "/v1/orders", data=body, content_type="application/json", headers=keys.ingest
    )
    assert response.status_code == 400
    assert response.content_type == "application/problem+json"


@pytest.mark.parametrize("bad_id", ["o\u00003", "c\ud800"], ids=["nul", "lone-surrogate"])
def test_text_a_database_cannot_store_is_a_field_error(api, bad_id):
    response = api.post("/v1/orders", [order(bad_id), order("o-ok", customer_id=bad_id)])
    assert response.status_code == 422
    assert {(e["index"], e["field"]) for e in response.json["errors"]} == {
        (0, "id"),
        (1, "customer_id"),
    }


def test_attributes_a_database_cannot_store_are_a_field_error(api):
    response = api.post("/v1/customers", [customer("c-1", attributes={"plan": "pro\u0000"})])
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "attributes"


def test_a_cursor_past_the_largest_key_is_a_422(api):
    cursor = base64.urlsafe_b64encode(json.dumps({"after": 10**20}).encode()).decode()
    response = api.get("/v1/orders", cursor=cursor)
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "cursor"


def test_batches_naming_the_same_sources_in_opposite_orders_do_not_deadlock(app, keys):
    def batch(first: str, second: str) -> list[dict]:
        return [customer(f"c-{i}", source=first) for i in range(30)] + [
            customer(f"c-{i}", source=second) for i in range(30)
        ]

    def post(i: int) -> int:
        items = batch("s1", "s2") if i % 2 else batch("s2", "s1")
        client = app.test_client()
        return client.post("/v1/customers", json={"items": items}, headers=keys.ingest).status_code

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(post, range(24))) == {200}
