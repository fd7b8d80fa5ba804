"""Real requests and answers checked against openapi.yaml: the document says what happens.

Each case here is one that schemathesis found the document getting wrong (issue 12,
finding 6): answers with nulls it typed as strings, requests it refused that the
service takes, rules the service enforces that it did not state.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
import yaml


@pytest.fixture(scope="module")
def document(repo_root) -> dict[str, Any]:
    return dict(yaml.safe_load((repo_root / "openapi.yaml").read_text()))


def conforms(document: dict[str, Any], schema: str, instance: Any) -> bool:
    """Whether `instance` is valid against components/schemas/`schema` of the document."""
    root = {"$ref": f"#/components/schemas/{schema}", "components": document["components"]}
    return bool(jsonschema_rs.Draft202012Validator(root).is_valid(instance))


def test_a_customer_known_only_by_id_is_answered_as_documented(api, document):
    assert api.post("/v1/customers", [{"id": "c-1"}]).status_code == 200
    answer = api.get("/v1/customers/api/c-1").json
    assert (answer["country"], answer["created_at"], answer["updated_at"]) == (None, None, None)
    assert conforms(document, "CustomerOut", answer)


def test_an_order_without_updated_at_is_answered_as_documented(api, document):
    order = {"id": "o-1", "customer_id": "c-1", "placed_at": "2024-03-01T10:00:00Z"}
    order |= {"currency": "USD", "total": "20.00", "status": "completed"}
    assert api.post("/v1/orders", [order]).status_code == 200
    answer = api.get("/v1/orders/api/o-1").json
    assert answer["updated_at"] is None
    assert conforms(document, "OrderOut", answer)


def test_spend_without_an_id_is_listed_as_documented(api, document):
    record = {"channel": "google", "amount": "5.00", "currency": "USD", "date": "2024-03-01"}
    assert api.post("/v1/acquisition-spend", [record]).status_code == 200
    page = api.get("/v1/acquisition-spend").json
    assert page["items"][0]["id"] is None
    assert conforms(document, "SpendPage", page)


@pytest.mark.parametrize(
    "customer",
    [
        {"id": "c-1", "country": None},
        {"id": "c-1", "country": " pl "},
        {"id": 17, "source": None, "created_at": None, "acquisition_channel": None},
    ],
)
def test_what_the_service_accepts_the_document_allows(api, document, customer):
    assert api.post("/v1/customers", [customer]).status_code == 200
    assert conforms(document, "CustomerBatch", {"items": [customer]})


@pytest.mark.parametrize(
    ("kind", "record"),
    [
        ("customers", {"id": "  "}),
        ("customers", {"id": "c-1", "country": "XX"}),
        (
            "orders",
            {
                "id": "o-1",
                "customer_id": "c-1",
                "placed_at": "2024-03-01T10:00:00Z",
                "currency": "EUR",
                "total": "1.00",
                "status": "completed",
            },
        ),
        (
            "acquisition-spend",
            {
                "channel": "g",
                "amount": "1",
                "currency": "USD",
                "date": "2024-03-01",
                "start_date": "2024-03-01",
                "end_date": "2024-03-02",
            },
        ),
        ("acquisition-spend", {"channel": "g", "amount": "1", "currency": "USD"}),
    ],
)
def test_what_the_service_refuses_the_document_forbids(api, document, kind, record):
    assert api.post(f"/v1/{kind}", [record]).status_code == 422
    schema = {"customers": "CustomerBatch", "orders": "OrderBatch"}.get(kind, "SpendBatch")
    assert not conforms(document, schema, {"items": [record]})


def test_the_document_states_each_webhooks_required_headers(document):
    def required(path: str) -> set[str]:
        parameters = document["paths"][path]["post"].get("parameters", [])
        return {p["name"] for p in parameters if p["in"] == "header" and p["required"]}

    assert required("/v1/webhooks/shopify") == {
        "X-Shopify-Topic",
        "X-Shopify-Webhook-Id",
        "X-Shopify-Shop-Domain",
    }
    assert required("/v1/webhooks/woocommerce") == {
        "X-WC-Webhook-Topic",
        "X-WC-Webhook-ID",
        "X-WC-Webhook-Source",
    }
    assert required("/v1/webhooks/standard") == {"webhook-id", "webhook-timestamp"}


def test_the_document_states_the_cursor_and_tz_rules(document):
    listing = document["paths"]["/v1/orders"]["get"]["parameters"]
    assert {p["name"]: p for p in listing}["cursor"]["schema"]["pattern"] == "^[A-Za-z0-9_-]*$"
    metrics = {p["name"]: p for p in document["paths"]["/v1/metrics"]["get"]["parameters"]}
    assert "pattern" in metrics["tz"]["schema"]
