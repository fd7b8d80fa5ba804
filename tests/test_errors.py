"""Every error is RFC 9457 problem+json, names the bad fields, and never leaks a stack trace."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import NullPool, create_engine, select, text

from service.auth import revoke_key
from service.models import ApiKey
from tests.conftest import one_backend
from tests.factories import customer, order

PROBLEM = "application/problem+json"
TYPE_BASE = "urn:customer-metrics:problem:"


def assert_problem(response, status: int, code: str) -> dict:
    """The response is a problem document of `status`, with every required member."""
    assert response.status_code == status
    assert response.content_type == PROBLEM
    body = json.loads(response.get_data(as_text=True))
    assert body["type"] == TYPE_BASE + code
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def fields_named(body: dict) -> set[str]:
    return {error["field"] for error in body.get("errors", [])}


# 400


@one_backend
def test_malformed_json_is_a_400_problem(client, keys):
    response = client.post(
        "/v1/orders", data='{"items": [', content_type="application/json", headers=keys.ingest
    )
    body = assert_problem(response, 400, "malformed-body")
    assert "not valid JSON" in body["detail"]


@one_backend
def test_a_body_that_is_not_utf8_is_a_400_problem(client, keys):
    response = client.post(
        "/v1/orders",
        data=b'{"items": [{"id": "\xff\xfe"}]}',
        content_type="application/json",
        headers=keys.ingest,
    )
    assert_problem(response, 400, "malformed-body")


# 401


@one_backend
def test_a_request_without_authorization_is_a_401_problem_with_a_challenge(client):
    response = client.get("/v1/orders")
    body = assert_problem(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in body["detail"]


@one_backend
def test_a_key_sent_under_another_scheme_is_a_401_problem(client, keys):
    token = keys.read["Authorization"].removeprefix("Bearer ")
    response = client.get("/v1/orders", headers={"Authorization": f"Basic {token}"})
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@one_backend
def test_a_bearer_header_without_a_key_is_a_401_problem(client, keys):
    response = client.get("/v1/orders", headers={"Authorization": "Bearer   "})
    assert_problem(response, 401, "unauthenticated")
    assert "WWW-Authenticate" in response.headers


@one_backend
def test_an_unknown_key_is_a_401_problem_saying_the_token_is_invalid(client, keys):
    response = client.get("/v1/orders", headers={"Authorization": "Bearer cm_not-a-real-key"})
    body = assert_problem(response, 401, "unauthenticated")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert body["detail"] == "The API key is unknown or revoked."


def test_a_revoked_key_is_a_401_problem(client, keys, db):
    token = keys.read["Authorization"].removeprefix("Bearer ")
    with db.transaction() as session:
        pk = session.scalar(select(ApiKey.pk).where(ApiKey.name == "read"))
        assert revoke_key(session, str(pk), datetime.now(UTC)) == 1
    response = client.get("/v1/orders", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401, "unauthenticated")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


# 403


@one_backend
def test_a_read_key_posting_orders_is_a_403_problem_naming_the_scope(client, keys):
    response = client.post("/v1/orders", json={"items": [order()]}, headers=keys.read)
    body = assert_problem(response, 403, "forbidden")
    assert "'ingest'" in body["detail"]


@one_backend
def test_an_ingest_key_reading_is_a_403_problem_naming_the_scope(client, keys):
    response = client.get("/v1/customers", headers=keys.ingest)
    body = assert_problem(response, 403, "forbidden")
    assert "'read'" in body["detail"]


# 404


@one_backend
def test_an_unknown_route_is_a_404_problem(client):
    assert_problem(client.get("/v2/nothing-here"), 404, "not-found")


def test_an_unknown_order_is_a_404_problem(client, keys):
    body = assert_problem(client.get("/v1/orders/api/nope", headers=keys.read), 404, "not-found")
    assert "'nope'" in body["detail"]


def test_an_unknown_customer_is_a_404_problem(client, keys):
    response = client.get("/v1/customers/shopify:a.myshopify.com/nobody", headers=keys.read)
    body = assert_problem(response, 404, "not-found")
    assert "'nobody'" in body["detail"]
    assert "'shopify:a.myshopify.com'" in body["detail"]


# 405


@one_backend
def test_a_method_the_route_does_not_have_is_a_405_problem_with_allow(client, keys):
    response = client.put("/v1/orders", json={"items": []}, headers=keys.admin)
    assert_problem(response, 405, "method-not-allowed")
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert {"GET", "POST"} <= allowed
    assert "PUT" not in allowed


@one_backend
def test_deleting_an_order_is_a_405_problem_with_allow(client, keys):
    response = client.delete("/v1/orders/api/o-1", headers=keys.admin)
    assert_problem(response, 405, "method-not-allowed")
    assert "GET" in response.headers["Allow"]


# 413


@one_backend
def test_a_body_over_max_body_bytes_is_a_413_problem(client, keys, settings):
    items = ",".join(['"x"'] * (settings.max_body_bytes // 4 + 1))
    body = f'{{"items": [{items}]}}'
    assert len(body) > settings.max_body_bytes
    response = client.post(
        "/v1/orders", data=body, content_type="application/json", headers=keys.ingest
    )
    assert_problem(response, 413, "body-too-large")


# 415


@one_backend
def test_a_text_plain_body_is_a_415_problem(client, keys):
    response = client.post(
        "/v1/orders",
        data=json.dumps({"items": [order()]}),
        content_type="text/plain",
        headers=keys.ingest,
    )
    body = assert_problem(response, 415, "unsupported-media-type")
    assert "text/plain" in body["detail"]


@one_backend
def test_a_body_without_content_type_is_a_415_problem(client, keys):
    response = client.post(
        "/v1/customers", data=json.dumps({"items": [customer()]}), headers=keys.ingest
    )
    assert_problem(response, 415, "unsupported-media-type")


# 422: batch shape


@one_backend
def test_a_batch_of_1001_items_is_a_422_problem_naming_items(api):
    response = api.post("/v1/customers", [customer(f"c-{i}") for i in range(1001)])
    body = assert_problem(response, 422, "validation-failed")
    assert fields_named(body) == {"items"}
    assert "1001" in body["errors"][0]["message"]
    assert api.get("/v1/customers").json["items"] == []


def test_a_batch_of_1000_items_is_accepted(api):
    response = api.post("/v1/customers", [customer(f"c-{i}") for i in range(1000)])
    assert response.status_code == 200
    assert response.json["created"] == 1000


@one_backend
def test_an_empty_batch_is_a_422_problem_naming_items(api):
    body = assert_problem(api.post("/v1/orders", []), 422, "validation-failed")
    assert fields_named(body) == {"items"}


@one_backend
def test_items_that_are_not_a_list_are_a_422_problem_naming_items(client, keys):
    response = client.post("/v1/orders", json={"items": order()}, headers=keys.ingest)
    body = assert_problem(response, 422, "validation-failed")
    assert fields_named(body) == {"items"}


@one_backend
def test_a_body_without_items_is_a_422_problem_naming_items(client, keys):
    response = client.post("/v1/orders", json={}, headers=keys.ingest)
    body = assert_problem(response, 422, "validation-failed")
    assert fields_named(body) == {"items"}


@one_backend
def test_a_body_that_is_a_bare_list_is_a_422_problem_naming_items(client, keys):
    response = client.post("/v1/orders", json=[order()], headers=keys.ingest)
    body = assert_problem(response, 422, "validation-failed")
    assert fields_named(body) == {"items"}


@one_backend
def test_an_unknown_top_level_field_is_a_422_problem_naming_it(client, keys):
    response = client.post(
        "/v1/orders", json={"items": [order()], "dry_run": True}, headers=keys.ingest
    )
    body = assert_problem(response, 422, "validation-failed")
    assert fields_named(body) == {"dry_run"}


@one_backend
def test_an_invalid_record_is_a_422_problem_by_index_id_and_field(api):
    response = api.post("/v1/orders", [order("o-1"), order("o-2", status="shipped")])
    body = assert_problem(response, 422, "validation-failed")
    assert [(e["index"], e["id"], e["field"]) for e in body["errors"]] == [(1, "o-2", "status")]


# 422: query parameters


@one_backend
def test_limit_zero_is_a_422_problem_naming_limit_in_the_query(client, keys):
    response = client.get("/v1/orders?limit=0", headers=keys.read)
    body = assert_problem(response, 422, "validation-failed")
    assert [(e["field"], e["in"]) for e in body["errors"]] == [("limit", "query")]


@one_backend
def test_a_limit_that_is_not_a_number_is_a_422_problem_naming_limit(client, keys):
    response = client.get("/v1/customers?limit=abc", headers=keys.read)
    body = assert_problem(response, 422, "validation-failed")
    assert [(e["field"], e["in"]) for e in body["errors"]] == [("limit", "query")]


@one_backend
def test_a_limit_above_the_maximum_is_a_422_problem_naming_limit(client, keys):
    response = client.get("/v1/acquisition-spend?limit=1001", headers=keys.read)
    body = assert_problem(response, 422, "validation-failed")
    assert fields_named(body) == {"limit"}


# 500


@one_backend
def test_an_unexpected_error_is_a_500_problem_that_reveals_nothing(fresh_app):
    def explode():
        raise RuntimeError("secret detail")

    fresh_app.add_url_rule("/test-only/explode", "explode", explode)
    client = fresh_app.test_client()
    response = client.get("/test-only/explode", headers={"X-Request-ID": "trace-me-500"})
    body = assert_problem(response, 500, "internal-error")
    assert body["request_id"] == "trace-me-500"
    text = response.get_data(as_text=True)
    assert "secret detail" not in text
    assert "Traceback" not in text
    assert "RuntimeError" not in text


# 503


def test_a_lost_database_connection_is_a_503_to_retry_and_the_retry_succeeds(
    client, keys, db, backend
):
    if backend == "sqlite":
        pytest.skip("an SQLite file has no server connection to lose")
    headers = keys.read
    assert client.get("/v1/orders", headers=headers).status_code == 200  # a pooled connection
    # What a server restart does to the pool's connections: the server ends them.
    admin = create_engine(db.engine.url, poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )

    lost = client.get("/v1/orders", headers=headers)

    body = assert_problem(lost, 503, "database-unavailable")
    assert lost.headers["Retry-After"] == "1"
    assert "Retry" in body["detail"]
    assert client.get("/v1/orders", headers=headers).status_code == 200


# X-Request-ID


@one_backend
def test_a_given_request_id_is_echoed_on_success(client):
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123.def:456_X"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "abc-123.def:456_X"


@one_backend
def test_a_given_request_id_is_echoed_in_a_problem(client):
    response = client.get("/v1/orders", headers={"X-Request-ID": "req-42"})
    body = assert_problem(response, 401, "unauthenticated")
    assert body["request_id"] == "req-42"


@one_backend
def test_a_missing_request_id_is_generated(client):
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/healthz").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert re.fullmatch(r"[0-9a-f]{32}", second)
    assert first != second


@one_backend
def test_a_request_id_of_500_characters_is_replaced(client):
    response = client.get("/healthz", headers={"X-Request-ID": "a" * 500})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


@one_backend
def test_a_request_id_with_spaces_is_replaced(client):
    response = client.get("/v1/orders", headers={"X-Request-ID": "hello world"})
    body = assert_problem(response, 401, "unauthenticated")
    assert re.fullmatch(r"[0-9a-f]{32}", body["request_id"])


@one_backend
def test_a_request_id_of_128_characters_is_honoured(client):
    given = "b" * 128
    assert client.get("/healthz", headers={"X-Request-ID": given}).headers["X-Request-ID"] == given
