"""POST /v1/customers and DELETE /v1/customers/{source}/{id}: METRICS.md §1, on both databases."""

from __future__ import annotations

import pytest

from tests.factories import counts, customer, order


def refused_fields(response) -> list[tuple[int, str]]:
    assert response.status_code == 422, response.json
    assert response.content_type == "application/problem+json"
    return [(e["index"], e["field"]) for e in response.json["errors"]]


# Upsert counts


def test_a_new_customer_is_created_and_read_back(api):
    response = api.post(
        "/v1/customers",
        [
            customer(
                "c-1",
                created_at="2024-01-15T09:30:00+01:00",
                attributes={"plan": "pro", "referrer": "friend"},
                updated_at="2024-01-16T00:00:00Z",
            )
        ],
    )
    assert response.status_code == 200
    assert response.json == counts(created=1)
    stored = api.get("/v1/customers/api/c-1").json
    assert stored["id"] == "c-1"
    assert stored["source"] == "api"
    assert stored["created_at"] == "2024-01-15T08:30:00Z"
    assert stored["acquisition_channel"] == "google"
    assert stored["country"] == "PL"
    assert stored["attributes"] == {"plan": "pro", "referrer": "friend"}
    assert stored["updated_at"] == "2024-01-16T00:00:00Z"
    assert stored["stub"] is False


def test_resending_the_same_customer_is_unchanged(api):
    api.post("/v1/customers", [customer("c-1", attributes={"a": "1"})])
    assert api.post("/v1/customers", [customer("c-1", attributes={"a": "1"})]).json == counts(
        unchanged=1
    )


def test_resending_in_another_spelling_of_the_same_values_is_unchanged(api):
    api.post("/v1/customers", [customer("c-1", acquisition_channel="google", country="PL")])
    response = api.post(
        "/v1/customers", [customer("c-1", acquisition_channel="  GOOGLE ", country="pl")]
    )
    assert response.json == counts(unchanged=1)


def test_a_changed_customer_is_updated(api):
    api.post("/v1/customers", [customer("c-1", country="PL")])
    assert api.post("/v1/customers", [customer("c-1", country="DE")]).json == counts(updated=1)
    assert api.get("/v1/customers/api/c-1").json["country"] == "DE"


def test_changed_attributes_are_an_update(api):
    api.post("/v1/customers", [customer("c-1", attributes={"plan": "free"})])
    response = api.post("/v1/customers", [customer("c-1", attributes={"plan": "pro"})])
    assert response.json == counts(updated=1)
    assert api.get("/v1/customers/api/c-1").json["attributes"] == {"plan": "pro"}


def test_a_mixed_batch_counts_each_outcome(api):
    api.post(
        "/v1/customers",
        [
            customer("same"),
            customer("changed", country="PL"),
            customer("old", updated_at="2024-03-02T00:00:00Z"),
        ],
    )
    response = api.post(
        "/v1/customers",
        [
            customer("same"),
            customer("changed", country="FR"),
            customer("old", country="FR", updated_at="2024-03-01T00:00:00Z"),
            customer("new-1"),
            customer("new-2"),
        ],
    )
    assert response.json == counts(created=2, updated=1, unchanged=1, stale=1)


def test_a_version_without_updated_at_lets_the_next_one_in_whatever_its_date(api):
    api.post("/v1/customers", [customer("c-1", country="PL", updated_at="2024-06-01T00:00:00Z")])
    batch = [
        customer("c-1", country="DE"),
        customer("c-1", country="FR", updated_at="2024-05-01T00:00:00Z"),
    ]
    assert api.post("/v1/customers", batch).json == counts(updated=2)
    assert api.get("/v1/customers/api/c-1").json["country"] == "FR"


def test_an_older_updated_at_is_ignored_as_stale(api):
    api.post("/v1/customers", [customer("c-1", country="PL", updated_at="2024-03-02T12:00:00Z")])
    response = api.post(
        "/v1/customers", [customer("c-1", country="DE", updated_at="2024-03-02T11:59:59Z")]
    )
    assert response.json == counts(stale=1)
    stored = api.get("/v1/customers/api/c-1").json
    assert stored["country"] == "PL"
    assert stored["updated_at"] == "2024-03-02T12:00:00Z"


def test_an_equal_updated_at_in_another_offset_replaces(api):
    api.post("/v1/customers", [customer("c-1", country="PL", updated_at="2024-03-02T12:00:00Z")])
    response = api.post(
        "/v1/customers", [customer("c-1", country="DE", updated_at="2024-03-02T13:00:00+01:00")]
    )
    assert response.json == counts(updated=1)
    assert api.get("/v1/customers/api/c-1").json["country"] == "DE"


def test_a_newer_updated_at_replaces(api):
    api.post("/v1/customers", [customer("c-1", country="PL", updated_at="2024-03-02T12:00:00Z")])
    response = api.post(
        "/v1/customers", [customer("c-1", country="DE", updated_at="2024-03-03T00:00:00Z")]
    )
    assert response.json == counts(updated=1)
    assert api.get("/v1/customers/api/c-1").json["country"] == "DE"


def test_a_resend_without_updated_at_replaces(api):
    api.post("/v1/customers", [customer("c-1", country="PL", updated_at="2024-03-02T12:00:00Z")])
    response = api.post("/v1/customers", [customer("c-1", country="DE")])
    assert response.json == counts(updated=1)
    assert api.get("/v1/customers/api/c-1").json["country"] == "DE"


def test_the_same_id_in_another_source_is_another_customer(api):
    response = api.post(
        "/v1/customers",
        [customer("c-1", country="PL"), customer("c-1", source="shopify:a.myshopify.com")],
    )
    assert response.json == counts(created=2)
    assert api.get("/v1/customers/shopify:a.myshopify.com/c-1").json["source"] == (
        "shopify:a.myshopify.com"
    )


def test_a_stub_made_by_an_order_is_created_by_the_customer_record(api):
    api.post("/v1/orders", [order("o-1", customer_id="c-1")])
    assert api.post("/v1/customers", [customer("c-1")]).json == counts(created=1)
    assert api.get("/v1/customers/api/c-1").json["stub"] is False


# Channel


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("Google", "google"),
        ("  Facebook Ads  ", "facebook ads"),
        ("NEWSLETTER\t", "newsletter"),
        ("", "unknown"),
        ("   ", "unknown"),
        (None, "unknown"),
    ],
)
def test_the_channel_is_trimmed_and_lower_cased_and_empty_means_unknown(api, sent, stored):
    record = customer("c-1", acquisition_channel=sent)
    if sent is None:
        record.pop("acquisition_channel", None)
    assert api.post("/v1/customers", [record]).status_code == 200
    assert api.get("/v1/customers/api/c-1").json["acquisition_channel"] == stored


def test_a_channel_sent_as_json_null_means_unknown(client, keys, api):
    body = {"items": [{"id": "c-1", "acquisition_channel": None}]}
    assert client.post("/v1/customers", json=body, headers=keys.ingest).status_code == 200
    assert api.get("/v1/customers/api/c-1").json["acquisition_channel"] == "unknown"


def test_a_channel_that_is_not_a_string_is_refused(api):
    response = api.post("/v1/customers", [customer("c-1", acquisition_channel=7)])
    assert refused_fields(response) == [(0, "acquisition_channel")]


# Country


@pytest.mark.parametrize(("sent", "stored"), [("pl", "PL"), ("De", "DE"), (" us ", "US")])
def test_the_country_is_stored_upper_case(api, sent, stored):
    api.post("/v1/customers", [customer("c-1", country=sent)])
    assert api.get("/v1/customers/api/c-1").json["country"] == stored


def test_a_customer_without_a_country_has_none(api):
    record = customer("c-1")
    del record["country"]
    api.post("/v1/customers", [record])
    assert api.get("/v1/customers/api/c-1").json["country"] is None


@pytest.mark.parametrize("sent", ["XX", "xx", "POL", "P", "EU", "UK", "12", 48])
def test_a_country_that_is_not_iso_3166_alpha_2_is_refused(api, sent):
    response = api.post("/v1/customers", [customer("c-1", country=sent)])
    assert refused_fields(response) == [(0, "country")]
    assert api.get("/v1/customers/api/c-1").status_code == 404


# Attributes


def test_attributes_of_strings_are_kept_exactly(api):
    attributes = {"plan": "pro", "note": "  spaces kept  ", "empty": "", "ünï": "çødé"}
    api.post("/v1/customers", [customer("c-1", attributes=attributes)])
    assert api.get("/v1/customers/api/c-1").json["attributes"] == attributes


@pytest.mark.parametrize(
    "attributes",
    [
        {"nested": {"a": "b"}},
        {"number": 1},
        {"flag": True},
        {"list": ["a"]},
        {"none": None},
        ["plan", "pro"],
        "plan=pro",
    ],
)
def test_attributes_that_are_not_a_flat_string_map_are_refused(api, attributes):
    response = api.post("/v1/customers", [customer("c-1", attributes=attributes)])
    assert refused_fields(response) == [(0, "attributes")]


def test_a_customer_without_attributes_has_an_empty_map(api):
    api.post("/v1/customers", [customer("c-1")])
    assert api.get("/v1/customers/api/c-1").json["attributes"] == {}


# Validation of the whole record


def test_a_customer_without_an_id_is_refused(api):
    response = api.post("/v1/customers", [{"acquisition_channel": "google"}])
    assert refused_fields(response) == [(0, "id")]


def test_an_unknown_customer_field_is_refused_by_name(api):
    response = api.post("/v1/customers", [customer("c-1", email="a@example.com")])
    assert refused_fields(response) == [(0, "email")]


def test_a_created_at_without_an_offset_is_refused(api):
    response = api.post("/v1/customers", [customer("c-1", created_at="2024-01-15T09:30:00")])
    assert refused_fields(response) == [(0, "created_at")]


def test_one_bad_customer_stores_none_of_the_batch(api):
    response = api.post(
        "/v1/customers", [customer("c-1"), customer("c-2", country="XX"), customer("c-3")]
    )
    assert refused_fields(response) == [(1, "country")]
    assert response.json["errors"][0]["id"] == "c-2"
    assert api.get("/v1/customers").json["items"] == []


# Erasure


def test_erasing_a_customer_removes_it_and_its_orders_only(api):
    api.post("/v1/customers", [customer("c-1"), customer("c-2")])
    api.post(
        "/v1/orders",
        [
            order("o-1", customer_id="c-1"),
            order("o-2", customer_id="c-1"),
            order("o-3", customer_id="c-2"),
        ],
    )
    response = api.delete("/v1/customers/api/c-1")
    assert response.status_code == 204
    assert response.get_data() == b""

    assert api.get("/v1/customers/api/c-1").status_code == 404
    assert api.get("/v1/orders/api/o-1").status_code == 404
    assert api.get("/v1/orders/api/o-2").status_code == 404
    assert api.get("/v1/customers/api/c-2").status_code == 200
    assert api.get("/v1/orders/api/o-3").json["customer_id"] == "c-2"
    assert [o["id"] for o in api.get("/v1/orders").json["items"]] == ["o-3"]
    assert [c["id"] for c in api.get("/v1/customers").json["items"]] == ["c-2"]


def test_erasing_twice_is_a_404_the_second_time(api):
    api.post("/v1/customers", [customer("c-1")])
    assert api.delete("/v1/customers/api/c-1").status_code == 204
    second = api.delete("/v1/customers/api/c-1")
    assert second.status_code == 404
    assert second.content_type == "application/problem+json"


def test_erasing_an_unknown_customer_is_a_404(api):
    assert api.delete("/v1/customers/api/nobody").status_code == 404


def test_erasing_leaves_the_same_id_in_another_source(api):
    shop = "shopify:a.myshopify.com"
    api.post(
        "/v1/orders",
        [order("o-1", customer_id="c-1"), order("o-1", customer_id="c-1", source=shop)],
    )
    assert api.delete("/v1/customers/api/c-1").status_code == 204
    assert api.get(f"/v1/customers/{shop}/c-1").status_code == 200
    assert api.get(f"/v1/orders/{shop}/o-1").status_code == 200
    assert api.get("/v1/orders/api/o-1").status_code == 404


def test_an_erased_customer_can_be_sent_again_and_is_created(api):
    api.post("/v1/customers", [customer("c-1")])
    api.delete("/v1/customers/api/c-1")
    assert api.post("/v1/customers", [customer("c-1")]).json == counts(created=1)


# Ids that contain slashes


def test_an_id_with_slashes_round_trips_through_get(api):
    shop = "shopify:a.myshopify.com"
    gid = "gid://shopify/Customer/1"
    api.post("/v1/customers", [customer(gid, source=shop, country="CA")])
    api.post("/v1/orders", [order("gid://shopify/Order/9", customer_id=gid, source=shop)])

    stored = api.get(f"/v1/customers/{shop}/{gid}")
    assert stored.status_code == 200
    assert (stored.json["id"], stored.json["source"], stored.json["country"]) == (gid, shop, "CA")
    placed = api.get(f"/v1/orders/{shop}/gid://shopify/Order/9")
    assert placed.status_code == 200
    assert placed.json["customer_id"] == gid


def test_an_id_with_slashes_can_be_erased(api):
    shop = "shopify:a.myshopify.com"
    gid = "gid://shopify/Customer/1"
    api.post("/v1/orders", [order("o-1", customer_id=gid, source=shop)])
    assert api.delete(f"/v1/customers/{shop}/{gid}").status_code == 204
    assert api.get(f"/v1/customers/{shop}/{gid}").status_code == 404
    assert api.get(f"/v1/orders/{shop}/o-1").status_code == 404


def test_an_integer_id_is_stored_as_its_digits(api):
    assert api.post("/v1/customers", [customer(12345)]).json == counts(created=1)
    assert api.get("/v1/customers/api/12345").json["id"] == "12345"
