"""Cursor pagination: next_cursor and Link rel="next" walk every record exactly once."""

from __future__ import annotations

import base64
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.factories import customer, order, spend

LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


def walk_by_link(api, path: str, **params) -> tuple[list[dict], list[dict]]:
    """Follow Link rel="next" from the first page to the last; the items and each page's query."""
    items: list[dict] = []
    queries: list[dict] = []
    response = api.get(path, **params)
    while True:
        assert response.status_code == 200
        items.extend(response.json["items"])
        link = response.headers.get("Link")
        if response.json["next_cursor"] is None:
            assert link is None
            return items, queries
        match = LINK.match(link or "")
        assert match, f"no Link rel=next with next_cursor {response.json['next_cursor']!r}"
        url = urlsplit(match["url"])
        assert url.path == path
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        assert query["cursor"] == response.json["next_cursor"]
        queries.append(query)
        response = api.client.get(f"{url.path}?{url.query}", headers=api.headers)
        assert len(queries) < 20, "pagination does not end"


def walk_by_cursor(api, path: str, **params) -> tuple[list[dict], list[int]]:
    """Follow next_cursor by hand; the items and the size of each page."""
    items: list[dict] = []
    sizes: list[int] = []
    cursor = None
    while True:
        query = dict(params) if cursor is None else {**params, "cursor": cursor}
        response = api.get(path, **query)
        assert response.status_code == 200
        items.extend(response.json["items"])
        sizes.append(len(response.json["items"]))
        cursor = response.json["next_cursor"]
        if cursor is None:
            assert "Link" not in response.headers
            return items, sizes
        assert len(sizes) < 20, "pagination does not end"


@pytest.fixture
def seven_customers_and_orders(api):
    ids = [f"c-{n}" for n in range(1, 8)]
    assert api.post("/v1/customers", [customer(i) for i in ids]).status_code == 200
    orders = [order(f"o-{n}", customer_id=f"c-{n}") for n in range(1, 8)]
    assert api.post("/v1/orders", orders).status_code == 200


def test_customers_walked_by_link_come_once_each_oldest_first(api, seven_customers_and_orders):
    items, queries = walk_by_link(api, "/v1/customers", limit=3)
    assert [c["id"] for c in items] == ["c-1", "c-2", "c-3", "c-4", "c-5", "c-6", "c-7"]
    assert len(queries) == 2
    assert all(q["limit"] == "3" for q in queries)


def test_orders_walked_by_link_come_once_each_oldest_first(api, seven_customers_and_orders):
    items, _ = walk_by_link(api, "/v1/orders", limit=3)
    assert [o["id"] for o in items] == ["o-1", "o-2", "o-3", "o-4", "o-5", "o-6", "o-7"]


def test_orders_walked_by_cursor_come_in_pages_of_the_limit(api, seven_customers_and_orders):
    items, sizes = walk_by_cursor(api, "/v1/orders", limit=3)
    assert sizes == [3, 3, 1]
    assert [o["id"] for o in items] == ["o-1", "o-2", "o-3", "o-4", "o-5", "o-6", "o-7"]


def test_a_limit_dividing_the_total_ends_on_a_full_page_without_a_next(api):
    api.post("/v1/customers", [customer(f"c-{n}") for n in range(1, 7)])
    items, sizes = walk_by_cursor(api, "/v1/customers", limit=3)
    assert sizes == [3, 3]
    assert len(items) == 6


def test_a_page_holding_everything_has_no_next(api, seven_customers_and_orders):
    response = api.get("/v1/customers", limit=7)
    assert len(response.json["items"]) == 7
    assert response.json["next_cursor"] is None
    assert "Link" not in response.headers


def test_an_empty_list_is_one_page_without_a_next(api):
    response = api.get("/v1/orders", limit=3)
    assert response.json == {"items": [], "next_cursor": None}
    assert "Link" not in response.headers


def test_the_default_limit_is_100(api):
    api.post("/v1/customers", [customer(f"c-{n:03}") for n in range(101)])
    first = api.get("/v1/customers")
    assert len(first.json["items"]) == 100
    second = api.get("/v1/customers", cursor=first.json["next_cursor"])
    assert [c["id"] for c in second.json["items"]] == ["c-100"]


def test_the_source_filter_is_kept_in_the_next_link(api):
    shop = "shopify:a.myshopify.com"
    mixed = []
    for n in range(1, 8):
        mixed.append(customer(f"s-{n}", source=shop))
        mixed.append(customer(f"a-{n}"))
    api.post("/v1/customers", mixed)
    items, queries = walk_by_link(api, "/v1/customers", limit=3, source=shop)
    assert [c["id"] for c in items] == ["s-1", "s-2", "s-3", "s-4", "s-5", "s-6", "s-7"]
    assert {c["source"] for c in items} == {shop}
    assert [q["source"] for q in queries] == [shop, shop]


def test_the_customer_filter_is_kept_in_the_next_link(api):
    orders = []
    for n in range(1, 8):
        orders.append(order(f"mine-{n}", customer_id="c-1"))
        orders.append(order(f"other-{n}", customer_id="c-2"))
    api.post("/v1/orders", orders)
    items, queries = walk_by_link(api, "/v1/orders", limit=3, customer_id="c-1")
    assert [o["id"] for o in items] == [f"mine-{n}" for n in range(1, 8)]
    assert [q["customer_id"] for q in queries] == ["c-1", "c-1"]


def test_source_and_customer_filters_together_are_kept_in_the_next_link(api):
    shop = "woocommerce:example.com"
    orders = []
    for n in range(1, 8):
        orders.append(order(f"w-{n}", customer_id="c-1", source=shop))
        orders.append(order(f"a-{n}", customer_id="c-1"))
    api.post("/v1/orders", orders)
    items, queries = walk_by_link(api, "/v1/orders", limit=3, source=shop, customer_id="c-1")
    assert [o["id"] for o in items] == [f"w-{n}" for n in range(1, 8)]
    assert {(q["source"], q["customer_id"]) for q in queries} == {(shop, "c-1")}


def test_records_added_while_walking_appear_on_a_later_page(api):
    api.post("/v1/customers", [customer(f"c-{n}") for n in range(1, 5)])
    first = api.get("/v1/customers", limit=3)
    api.post("/v1/customers", [customer("c-5")])
    rest, _ = walk_by_cursor(api, "/v1/customers", limit=3, cursor=first.json["next_cursor"])
    assert [c["id"] for c in first.json["items"] + rest] == ["c-1", "c-2", "c-3", "c-4", "c-5"]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


TAMPERED = [
    "garbage!!",
    "not-base64-at-all",
    _b64("not json"),
    _b64('{"before": 3}'),
    _b64('{"after": -1}'),
    _b64('{"after": "3"}'),
    _b64('{"after": true}'),
    _b64('{"after": 1.5}'),
    _b64("[3]"),
]


@pytest.mark.parametrize("path", ["/v1/customers", "/v1/orders", "/v1/acquisition-spend"])
@pytest.mark.parametrize("cursor", TAMPERED)
def test_a_tampered_cursor_is_a_422_naming_cursor(api, path, cursor):
    response = api.get(path, cursor=cursor)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert [(e["field"], e["in"]) for e in response.json["errors"]] == [("cursor", "query")]


def test_spend_walked_by_link_comes_once_each_oldest_first(api):
    records = [spend(id=f"s-{n}", date=f"2024-03-0{n}") for n in range(1, 8)]
    assert api.post("/v1/acquisition-spend", records).status_code == 200
    items, queries = walk_by_link(api, "/v1/acquisition-spend", limit=3)
    assert [s["id"] for s in items] == ["s-1", "s-2", "s-3", "s-4", "s-5", "s-6", "s-7"]
    assert [s["start_date"] for s in items] == [f"2024-03-0{n}" for n in range(1, 8)]
    assert len(queries) == 2


def test_spend_without_ids_is_walked_by_cursor_in_pages_of_the_limit(api):
    records = [spend(amount=f"{n}.00") for n in range(1, 8)]
    api.post("/v1/acquisition-spend", records)
    items, sizes = walk_by_cursor(api, "/v1/acquisition-spend", limit=3)
    assert sizes == [3, 3, 1]
    assert [s["amount"] for s in items] == [f"{n}.00" for n in range(1, 8)]
    assert all(s["id"] is None for s in items)


@pytest.mark.parametrize("path", ["/v1/customers", "/v1/orders", "/v1/acquisition-spend"])
def test_a_cursor_of_deeply_nested_json_is_a_422_naming_cursor(api, path):
    response = api.get(path, cursor=_b64("[" * 10_000 + "]" * 10_000))
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert [(e["field"], e["in"]) for e in response.json["errors"]] == [("cursor", "query")]
