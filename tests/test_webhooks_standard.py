"""Standard Webhooks deliveries: the spec's signing scheme, timestamp window and envelopes."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from service.db import Database
from service.webhooks.signatures import SignatureRejected, standard_signature, verify_standard
from tests.conftest import Api, one_backend
from tests.factories import customer, order, spend
from tests.webhook_payloads import (
    STANDARD_SECRET,
    body_of,
    standard_entry,
    standard_envelope,
    standard_headers,
)
from tests.webhook_support import (
    accepted,
    add_sender,
    assert_refused,
    deliver_standard,
    delivery_count,
    stored_deliveries,
)

SENDER = "crm"
OTHER_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()

# The reference library's test vector (standard-webhooks, libraries/python/tests).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
VECTOR_WRONG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="  # last character changed
VECTOR_NOW = datetime.fromtimestamp(VECTOR_TIMESTAMP, UTC)
# An asymmetric (v1a) entry, as the spec's example header carries: skipped, not an error.
ED25519_ENTRY = (
    "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg=="
)


@pytest.fixture
def sender(db: Database) -> str:
    add_sender(db, "standard", SENDER, STANDARD_SECRET)
    return SENDER


def post(client: FlaskClient, body: bytes, headers: dict[str, str]) -> Any:
    return client.post("/v1/webhooks/standard", data=body, headers=headers)


# --- the signing scheme, without a database ------------------------------------------------


def test_the_spec_test_vector_is_reproduced_by_the_service_and_by_the_test_helper() -> None:
    signed = standard_signature(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)

    assert signed == VECTOR_SIGNATURE
    assert standard_entry(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == signed


def test_the_key_is_the_decoded_secret_so_the_prefix_may_be_left_out() -> None:
    bare = VECTOR_SECRET.removeprefix("whsec_")

    assert standard_signature(bare, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_the_spec_vector_verifies_at_its_own_time_and_its_altered_copy_does_not() -> None:
    verify = verify_standard  # (secrets, id, timestamp, body, header, now)
    verify(
        [VECTOR_SECRET], VECTOR_ID, str(VECTOR_TIMESTAMP), VECTOR_BODY, VECTOR_SIGNATURE, VECTOR_NOW
    )

    with pytest.raises(SignatureRejected):
        verify(
            [VECTOR_SECRET], VECTOR_ID, str(VECTOR_TIMESTAMP), VECTOR_BODY, VECTOR_WRONG, VECTOR_NOW
        )


@pytest.mark.parametrize("seconds", [-300, -1, 0, 1, 300])
def test_a_timestamp_up_to_five_minutes_either_side_of_now_is_accepted(seconds: int) -> None:
    now = VECTOR_NOW + timedelta(seconds=seconds)

    verify_standard(
        [VECTOR_SECRET], VECTOR_ID, str(VECTOR_TIMESTAMP), VECTOR_BODY, VECTOR_SIGNATURE, now
    )


@pytest.mark.parametrize("seconds", [-360, -301, 301, 360])
def test_a_timestamp_further_than_five_minutes_either_side_is_refused(seconds: int) -> None:
    now = VECTOR_NOW + timedelta(seconds=seconds)

    with pytest.raises(SignatureRejected, match="5 minutes"):
        verify_standard(
            [VECTOR_SECRET], VECTOR_ID, str(VECTOR_TIMESTAMP), VECTOR_BODY, VECTOR_SIGNATURE, now
        )


@pytest.mark.parametrize(
    "header",
    [
        f"v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= {VECTOR_SIGNATURE}",
        f"{ED25519_ENTRY} {VECTOR_SIGNATURE}",
        f"{VECTOR_WRONG} v2,whatever {VECTOR_SIGNATURE}",
        f"{VECTOR_SIGNATURE} {VECTOR_WRONG}",
    ],
)
def test_one_matching_entry_among_several_is_enough(header: str) -> None:
    verify_standard(
        [VECTOR_SECRET], VECTOR_ID, str(VECTOR_TIMESTAMP), VECTOR_BODY, header, VECTOR_NOW
    )


def test_the_signature_covers_the_message_id() -> None:
    with pytest.raises(SignatureRejected):
        verify_standard(
            [VECTOR_SECRET],
            "msg_other",
            str(VECTOR_TIMESTAMP),
            VECTOR_BODY,
            VECTOR_SIGNATURE,
            VECTOR_NOW,
        )


# --- over HTTP: the timestamp window ------------------------------------------------------

# The service reads its own clock; keep a few seconds away from the exact edge so a slow
# test run cannot cross it (the exact edges are tested above with a fixed clock).
ALMOST_FIVE_MINUTES = 5 * 60 - 10
SIX_MINUTES = 6 * 60


@pytest.mark.parametrize("offset", [-ALMOST_FIVE_MINUTES, ALMOST_FIVE_MINUTES])
def test_a_delivery_signed_just_under_five_minutes_away_is_accepted(
    client: FlaskClient, api: Api, sender: str, offset: int
) -> None:
    payload = standard_envelope("order", order("o-1"))

    accepted(deliver_standard(client, payload, timestamp=int(time.time()) + offset))

    assert api.get(f"/v1/orders/{SENDER}/o-1").status_code == 200


@pytest.mark.parametrize("offset", [-SIX_MINUTES, SIX_MINUTES])
def test_a_delivery_signed_six_minutes_away_is_refused_and_nothing_is_stored(
    client: FlaskClient, db: Database, sender: str, offset: int
) -> None:
    payload = standard_envelope("order", order("o-1"))

    problem = assert_refused(deliver_standard(client, payload, timestamp=int(time.time()) + offset))

    assert "5 minutes" in problem["detail"]
    assert delivery_count(db) == 0


@one_backend
@pytest.mark.parametrize("timestamp", ["yesterday", "1614265330.5", ""])
def test_a_timestamp_that_is_not_unix_seconds_is_refused(
    client: FlaskClient, db: Database, sender: str, timestamp: str
) -> None:
    body = body_of(standard_envelope("order", order("o-1")))
    headers = standard_headers(body, "msg_1", int(time.time()))
    headers["webhook-timestamp"] = timestamp

    assert_refused(post(client, body, headers))
    assert delivery_count(db) == 0


@one_backend
def test_a_timestamp_in_milliseconds_is_refused_as_out_of_window(
    client: FlaskClient, db: Database, sender: str
) -> None:
    body = body_of(standard_envelope("order", order("o-1")))
    milliseconds = int(time.time() * 1000)
    headers = standard_headers(body, "msg_1", milliseconds)

    assert_refused(post(client, body, headers))
    assert delivery_count(db) == 0


# --- over HTTP: signatures and senders ----------------------------------------------------


@one_backend
@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_refused_and_nothing_is_stored(
    client: FlaskClient, db: Database, sender: str, missing: str
) -> None:
    body = body_of(standard_envelope("order", order("o-1")))
    headers = standard_headers(body, "msg_1", int(time.time()))
    del headers[missing]

    assert_refused(post(client, body, headers))
    assert delivery_count(db) == 0


@one_backend
def test_a_forged_signature_is_refused_and_nothing_is_stored(
    client: FlaskClient, db: Database, sender: str
) -> None:
    payload = standard_envelope("order", order("o-1"))

    assert_refused(deliver_standard(client, payload, secret=OTHER_SECRET))
    assert delivery_count(db) == 0


def test_without_a_configured_sender_every_delivery_is_refused(
    client: FlaskClient, db: Database
) -> None:
    problem = assert_refused(deliver_standard(client, standard_envelope("order", order())))

    assert "no Standard Webhooks sender" in problem["detail"]
    assert delivery_count(db) == 0


def test_several_entries_with_one_matching_are_accepted_over_http(
    client: FlaskClient, api: Api, sender: str
) -> None:
    body = body_of(standard_envelope("order", order("o-1")))
    now = int(time.time())
    good = standard_entry(STANDARD_SECRET, "msg_1", now, body)
    stale = standard_entry(OTHER_SECRET, "msg_1", now, body)
    headers = standard_headers(body, "msg_1", now)
    headers["webhook-signature"] = f"{stale} v1a,bm90LWNoZWNrZWQ= {good}"

    accepted(post(client, body, headers))

    assert api.get(f"/v1/orders/{SENDER}/o-1").status_code == 200


def test_the_sender_is_the_one_whose_secret_verifies_and_it_fixes_the_source(
    client: FlaskClient, api: Api, db: Database, sender: str
) -> None:
    add_sender(db, "standard", "billing", OTHER_SECRET)

    accepted(
        deliver_standard(client, standard_envelope("order", order("o-1")), secret=OTHER_SECRET)
    )
    accepted(deliver_standard(client, standard_envelope("order", order("o-2"))))

    assert api.get("/v1/orders/billing/o-1").status_code == 200
    assert api.get(f"/v1/orders/{SENDER}/o-2").status_code == 200
    assert api.get(f"/v1/orders/{SENDER}/o-1").status_code == 404


def test_the_same_webhook_id_twice_is_stored_once_and_answered_as_a_duplicate(
    client: FlaskClient, db: Database, sender: str
) -> None:
    payload = standard_envelope("order", order("o-1"))

    first = accepted(deliver_standard(client, payload, message_id="msg_dup"))
    again = accepted(deliver_standard(client, payload, message_id="msg_dup"), "duplicate")

    assert again["delivery_id"] == first["delivery_id"]
    assert delivery_count(db) == 1


# --- envelopes -----------------------------------------------------------------------------


def test_a_customer_envelope_stores_the_customer_under_the_senders_source(
    client: FlaskClient, api: Api, sender: str
) -> None:
    record = customer("c-1", created_at="2024-01-05T08:00:00+01:00", attributes={"tier": "gold"})

    accepted(deliver_standard(client, standard_envelope("customer", record)))

    found = api.get(f"/v1/customers/{SENDER}/c-1").json
    found.pop("ingested_at")
    assert found == {
        "id": "c-1",
        "source": SENDER,
        "created_at": "2024-01-05T07:00:00Z",
        "acquisition_channel": "google",
        "country": "PL",
        "attributes": {"tier": "gold"},
        "updated_at": None,
        "stub": False,
    }


def test_an_order_envelope_stores_the_order_under_the_senders_source(
    client: FlaskClient, api: Api, sender: str
) -> None:
    record = order(
        "o-1", total="50.00", refunded="5.00", updated_at="2024-03-02T00:00:00Z", test=True
    )

    accepted(deliver_standard(client, standard_envelope("order", record)))

    found = api.get(f"/v1/orders/{SENDER}/o-1").json
    found.pop("ingested_at")
    assert found == {
        "id": "o-1",
        "source": SENDER,
        "customer_id": "c-1",
        "placed_at": "2024-03-01T10:00:00Z",
        "currency": "USD",
        "total": "50.00",
        "refunded": "5.00",
        "status": "completed",
        "test": True,
        "updated_at": "2024-03-02T00:00:00Z",
    }


def test_a_spend_envelope_stores_the_spend(client: FlaskClient, api: Api, sender: str) -> None:
    record = spend(
        id="sp-1", amount="90.00", date=None, start_date="2024-03-01", end_date="2024-03-03"
    )

    accepted(deliver_standard(client, standard_envelope("spend", record)))

    (found,) = api.get("/v1/acquisition-spend").json["items"]
    found.pop("ingested_at")
    assert found == {
        "id": "sp-1",
        "channel": "google",
        "amount": "90.00",
        "currency": "USD",
        "start_date": "2024-03-01",
        "end_date": "2024-03-03",
    }


def test_a_record_naming_the_senders_own_source_is_accepted(
    client: FlaskClient, api: Api, sender: str
) -> None:
    accepted(deliver_standard(client, standard_envelope("order", order("o-1", source=SENDER))))

    assert api.get(f"/v1/orders/{SENDER}/o-1").status_code == 200


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (standard_envelope("order", order("o-1", source="api")), "data.source must be 'crm'"),
        ({"type": "invoice.paid", "data": {"id": "in_1"}}, "type must be one of"),
        ({"type": "order.upserted"}, '"data"'),
        (standard_envelope("order", order("o-1", currency="EUR")), "reporting currency"),
        (standard_envelope("order", order("o-1", total="10.001")), "total"),
    ],
)
def test_a_verified_delivery_that_cannot_be_mapped_is_stored_as_failed_with_its_reason(
    client: FlaskClient, api: Api, db: Database, sender: str, payload: dict[str, Any], reason: str
) -> None:
    answer = accepted(deliver_standard(client, payload), "failed")

    assert reason in answer["detail"]
    assert api.get("/v1/orders").json["items"] == []
    assert stored_deliveries(db)[0][1:3] == ("failed", answer["detail"])


def test_a_signed_body_that_is_not_json_is_stored_as_failed(
    client: FlaskClient, db: Database, sender: str
) -> None:
    body = b"<xml>not json</xml>"
    headers = standard_headers(body, "msg_x", int(time.time()))

    accepted(post(client, body, headers), "failed")

    assert stored_deliveries(db)[0][:2] == ("(not JSON)", "failed")
