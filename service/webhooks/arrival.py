"""A delivery as it arrived, read off its platform's headers, and what it must be to be stored.

Each platform names its sender, its delivery's identity and its signature in its
own headers (`shopify_arrival`, `woocommerce_arrival`, `standard_arrival`); the
`Arrival` they give is what `service.webhooks.intake` verifies against the
sender's secrets and stores.

A delivery is de-duplicated on its key, so a key is stored whole or refused `400`,
never cut: two ids that differ only past the cut would be taken for one delivery,
the second answered `duplicate` and its records never stored. Real senders' ids are
short (Shopify: a UUID; Standard Webhooks senders: `msg_` + a KSUID), so a refusal
only ever meets a broken or hostile sender, who sees it at once instead of a `200`.

A body nested deeper than any platform's payload is refused at intake, as the REST
parser refuses it, instead of being acknowledged and then failing to map.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from itertools import accumulate
from typing import Any
from urllib.parse import urlsplit

from service.failures import MalformedInput
from service.jsonio import loads_exact
from service.models import DELIVERY_KEY_LENGTH, TOPIC_LENGTH
from service.text import storable
from service.webhooks.signatures import verify_body_signature, verify_standard
from service.webhooks.sources import Sender

# Platform payloads nest 6 to 8 levels (order → line_items → tax_lines → price_set → ...).
MAX_NESTING = 64
# A WooCommerce key is "{webhook id}:{topic}:{64 hex digits}": together they fit the column.
WOO_ID_LENGTH = 64
WOO_TOPIC_LENGTH = DELIVERY_KEY_LENGTH - WOO_ID_LENGTH - len("::") - 64
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_NOT_BRACKETS_OR_QUOTES = bytes(b for b in range(256) if b not in b'[]{}"')
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
NOT_JSON = object()  # a body that is not JSON at all is kept, and fails mapping with its reason


WOOCOMMERCE_PING = re.compile(rb"webhook_id=[0-9]+")
# The platform headers kept with a delivery, by their lower-case names (x-shopify-topic).
KEPT_HEADERS = ("x-shopify-", "x-wc-webhook-", "webhook-")


@dataclass
class Arrival:
    """A delivery as it arrived, before any sender's secret has verified it."""

    kind: str
    name: str | None  # the sender it names; None: any sender of the kind (Standard Webhooks)
    verify: Callable[[Sender], str]  # returns the secret that verifies it, or raises
    key: str
    topic: str | None  # None: the Standard Webhooks envelope's type
    body: bytes
    headers: dict[str, str]  # the platform's, kept with the delivery
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    rejections: list[str] = field(default_factory=list)

    @cached_property
    def verified_topic(self) -> str:
        """The topic to store. Read once a secret verified the delivery: the body is read
        then, and a body nested too deep is refused (400)."""
        payload = readable_payload(self.body)
        return self.topic or standard_type(payload)

    def refusal(self) -> str:
        if self.rejections:
            return self.rejections[0]
        if self.name is None:
            return "no Standard Webhooks sender is configured"
        return f"no {self.kind} webhook sender named {self.name!r} is configured"


class _Headers:
    """A request's headers by lower-case name; a required one missing is a 400."""

    def __init__(self, headers: Mapping[str, str]):
        self._values = {name.lower(): value for name, value in headers.items()}

    def required(self, name: str, limit: int | None = None) -> str:
        """A required header; one that becomes part of a delivery's identity must fit `limit`."""
        value = self.optional(name)
        if value is None:
            raise MalformedInput(
                f"The {name} header is missing.",
                errors=[{"field": name, "in": "header", "message": "is required"}],
            )
        return value if limit is None else fitting(value, limit, name)

    def optional(self, name: str) -> str | None:
        value = self._values.get(name.lower())
        return value.strip() if value and value.strip() else None

    def kept(self) -> dict[str, str]:
        values = self._values.items()
        return {name: value for name, value in values if name.startswith(KEPT_HEADERS)}


def shopify_arrival(headers: Mapping[str, str], read_body: Callable[[], bytes]) -> Arrival:
    """Signed with X-Shopify-Hmac-Sha256 by the shop X-Shopify-Shop-Domain names; the key
    is X-Shopify-Webhook-Id. The headers are checked before the body is read."""
    given = _Headers(headers)
    topic = given.required("X-Shopify-Topic", TOPIC_LENGTH)
    key = given.required("X-Shopify-Webhook-Id", DELIVERY_KEY_LENGTH)
    shop = given.required("X-Shopify-Shop-Domain").lower()
    signature = given.optional("X-Shopify-Hmac-Sha256")
    body = read_body()
    return Arrival(
        "shopify",
        shop,
        lambda sender: verify_body_signature(sender.secrets, body, signature),
        key,
        topic,
        body,
        given.kept(),
    )


def woocommerce_arrival(
    headers: Mapping[str, str], read_body: Callable[[], bytes]
) -> Arrival | None:
    """Signed with X-WC-Webhook-Signature by the site X-WC-Webhook-Source names; None for
    the unsigned ping WooCommerce sends when a webhook is created."""
    body = read_body()
    given = _Headers(headers)
    signature = given.optional("X-WC-Webhook-Signature")
    if signature is None and WOOCOMMERCE_PING.fullmatch(body.strip()):
        return None
    topic = given.required("X-WC-Webhook-Topic", WOO_TOPIC_LENGTH)
    site = urlsplit(given.required("X-WC-Webhook-Source")).hostname or ""
    key = woocommerce_key(given.required("X-WC-Webhook-ID", WOO_ID_LENGTH), topic, body)
    return Arrival(
        "woocommerce",
        site,
        lambda sender: verify_body_signature(sender.secrets, body, signature),
        key,
        topic,
        body,
        given.kept(),
    )


def standard_arrival(headers: Mapping[str, str], read_body: Callable[[], bytes]) -> Arrival:
    """Signed per the Standard Webhooks spec by whichever sender's secret verifies it; the
    key is webhook-id, the topic the envelope's type."""
    body = read_body()
    given = _Headers(headers)
    message_id, timestamp = given.optional("webhook-id"), given.optional("webhook-timestamp")
    if message_id is not None:
        fitting(message_id, DELIVERY_KEY_LENGTH, "webhook-id")
    signature, now = given.optional("webhook-signature"), datetime.now(UTC)

    def verify(sender: Sender) -> str:
        return verify_standard(sender.secrets, message_id, timestamp, body, signature, now)

    # The topic is the envelope's type: read from the body once a secret verified it.
    return Arrival("standard", None, verify, str(message_id), None, body, given.kept(), now)


def fitting(value: str, limit: int, field: str, where: str = "header") -> str:
    """`value` if it has at most `limit` characters; else a 400 naming `field`."""
    if len(value) <= limit:
        return value
    message = f"must be at most {limit} characters, got {len(value)}"
    raise MalformedInput(
        f"The {field} {where} is too long: a delivery's identity is stored whole or not at all.",
        errors=[{"field": field, "in": where, "message": message}],
    )


def woocommerce_key(webhook_id: str, topic: str, body: bytes) -> str:
    """WooCommerce's delivery id is not unique: the key is webhook id, topic and body hash."""
    return f"{webhook_id}:{topic}:{hashlib.sha256(body).hexdigest()}"


def readable_payload(body: bytes) -> Any:
    """The body's JSON, or NOT_JSON; a 400 for JSON nested past MAX_NESTING or unreadable."""
    try:
        payload = loads_exact(body)
    except ValueError:  # not JSON (UTF-8 only, so the scan below reads what was parsed)
        return NOT_JSON
    except (RecursionError, ArithmeticError):  # deeper than Python parses; a number too large
        too_deep = True
    else:
        too_deep = nesting_depth(body) > MAX_NESTING
    if too_deep:
        raise MalformedInput(
            f"The body nests deeper than {MAX_NESTING} levels of arrays and objects, "
            "or holds a number this service cannot read. Nothing was stored."
        )
    return payload


def nesting_depth(text: bytes) -> int:
    """How deep arrays and objects nest in this valid JSON text (a scalar: 0).

    Read off the brackets outside strings, with the text's own C-speed methods: a
    fraction of the time walking the parsed value takes.
    """
    # Without its escapes (\" and \\ among them), a string is what lies between two quotes.
    reduced = _ESCAPE.sub(b"", text).translate(None, _NOT_BRACKETS_OR_QUOTES)
    outside_strings = b"".join(reduced.split(b'"')[::2])
    return max(accumulate(_STEP[bracket] for bracket in outside_strings), default=0)


def standard_type(payload: Any) -> str:
    """A Standard Webhooks delivery's topic: its envelope's `type`, which must fit whole."""
    if payload is NOT_JSON:
        return "(not JSON)"
    kind = payload.get("type") if isinstance(payload, dict) else None
    if not isinstance(kind, str):
        return "(no type)"
    try:
        storable(kind)  # the topic is stored: both databases must be able to
    except ValueError as refused:
        raise MalformedInput(
            f"The body's type {refused}. Nothing was stored.",
            errors=[{"field": "type", "in": "body", "message": str(refused)}],
        ) from None
    return fitting(kind, TOPIC_LENGTH, "type", "body")
