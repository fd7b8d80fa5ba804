"""API keys and scopes: who may ingest, read and erase; probes need no key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from service.auth import create_key, find_active_key, revoke_key
from service.models import ApiKey
from tests.factories import customer, order, spend

INGEST_CALLS = [
    ("post", "/v1/customers", {"items": [customer("c-9")]}),
    ("post", "/v1/orders", {"items": [order("o-9", customer_id="c-9")]}),
    ("post", "/v1/acquisition-spend", {"items": [spend()]}),
]
READ_CALLS = [
    "/v1/customers",
    "/v1/customers/api/c-1",
    "/v1/orders",
    "/v1/orders/api/o-1",
    "/v1/acquisition-spend",
]


@pytest.fixture
def stored(api):
    """One customer with one order, so read-back and erasure have something to find."""
    assert api.post("/v1/orders", [order("o-1", customer_id="c-1")]).status_code == 200


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


@pytest.mark.parametrize(("method", "path", "body"), INGEST_CALLS)
def test_an_ingest_key_may_post_every_kind_of_record(client, keys, method, path, body):
    response = getattr(client, method)(path, json=body, headers=keys.ingest)
    assert response.status_code == 200
    assert response.json["created"] == 1


def test_an_ingest_key_may_erase_a_customer(client, keys, stored):
    assert client.delete("/v1/customers/api/c-1", headers=keys.ingest).status_code == 204


@pytest.mark.parametrize("path", READ_CALLS)
def test_an_ingest_key_may_not_read(client, keys, stored, path):
    response = client.get(path, headers=keys.ingest)
    assert response.status_code == 403
    assert response.content_type == "application/problem+json"


@pytest.mark.parametrize("path", READ_CALLS)
def test_a_read_key_may_read(client, keys, stored, path):
    assert client.get(path, headers=keys.read).status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), INGEST_CALLS)
def test_a_read_key_may_not_post(client, keys, method, path, body):
    response = getattr(client, method)(path, json=body, headers=keys.read)
    assert response.status_code == 403
    assert response.content_type == "application/problem+json"


def test_a_read_key_may_not_erase_a_customer(client, keys, stored):
    assert client.delete("/v1/customers/api/c-1", headers=keys.read).status_code == 403
    assert client.get("/v1/customers/api/c-1", headers=keys.read).status_code == 200


def test_a_refused_post_stores_nothing(client, keys):
    client.post("/v1/customers", json={"items": [customer("c-9")]}, headers=keys.read)
    assert client.get("/v1/customers", headers=keys.read).json["items"] == []


def test_scopes_are_checked_before_the_body_is_read(client, keys):
    response = client.post(
        "/v1/orders", data="not json", content_type="text/plain", headers=keys.read
    )
    assert response.status_code == 403


@pytest.mark.parametrize(("method", "path", "body"), INGEST_CALLS)
def test_an_admin_key_may_post(client, keys, method, path, body):
    assert getattr(client, method)(path, json=body, headers=keys.admin).status_code == 200


@pytest.mark.parametrize("path", READ_CALLS)
def test_an_admin_key_may_read(client, keys, stored, path):
    assert client.get(path, headers=keys.admin).status_code == 200


def test_an_admin_key_may_erase_a_customer(client, keys, stored):
    assert client.delete("/v1/customers/api/c-1", headers=keys.admin).status_code == 204


def test_a_key_with_ingest_and_read_may_do_both(client, keys, stored):
    assert client.get("/v1/orders", headers=keys.both).status_code == 200
    body = {"items": [customer("c-2")]}
    assert client.post("/v1/customers", json=body, headers=keys.both).status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_need_no_key(client, path):
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_ignore_a_bad_key(client, path):
    assert client.get(path, headers={"Authorization": "Bearer nonsense"}).status_code == 200


@pytest.mark.parametrize("path", ["/v1/customers", "/v1/orders", "/v1/acquisition-spend"])
def test_every_v1_list_needs_a_key(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers


def test_the_scheme_name_is_case_insensitive(client, keys):
    response = client.get("/v1/orders", headers={"Authorization": f"bearer {token_of(keys.read)}"})
    assert response.status_code == 200


def test_a_revoked_key_gets_401(client, keys, db):
    assert client.get("/v1/orders", headers=keys.admin).status_code == 200
    with db.transaction() as session:
        key = find_active_key(session, token_of(keys.admin))
        assert key is not None
        assert revoke_key(session, str(key.pk), datetime.now(UTC)) == 1
    response = client.get("/v1/orders", headers=keys.admin)
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_revoking_one_key_leaves_the_others_working(client, keys, db):
    with db.transaction() as session:
        key = find_active_key(session, token_of(keys.read))
        assert key is not None
        revoke_key(session, str(key.pk), datetime.now(UTC))
    assert client.get("/v1/orders", headers=keys.read).status_code == 401
    assert client.get("/v1/orders", headers=keys.both).status_code == 200


def test_a_key_can_be_revoked_by_its_listed_prefix(client, db):
    with db.transaction() as session:
        record, key = create_key(session, "to revoke", ["read"], datetime.now(UTC))
        prefix = record.prefix
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/orders", headers=headers).status_code == 200
    with db.transaction() as session:
        assert revoke_key(session, prefix, datetime.now(UTC)) == 1
    assert client.get("/v1/orders", headers=headers).status_code == 401


def test_revoking_an_already_revoked_key_revokes_nothing(db, keys):
    with db.transaction() as session:
        pk = session.scalar(select(ApiKey.pk).where(ApiKey.name == "ingest"))
        assert revoke_key(session, str(pk), datetime.now(UTC)) == 1
    with db.transaction() as session:
        assert revoke_key(session, str(pk), datetime.now(UTC)) == 0


def test_only_a_hash_of_the_key_is_stored(db, keys):
    token = token_of(keys.admin)
    with db.sessions() as session:
        record = session.scalar(select(ApiKey).where(ApiKey.name == "admin"))
    assert record is not None
    assert token not in (record.key_hash, record.prefix)
    assert token.startswith(record.prefix)
