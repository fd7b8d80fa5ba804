"""What a delivery must be before it is stored: an identity that fits whole, JSON we can read.

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
from itertools import accumulate
from typing import Any

from service.failures import MalformedInput
from service.jsonio import loads_exact
from service.models import DELIVERY_KEY_LENGTH, TOPIC_LENGTH
from service.text import storable

# Platform payloads nest 6 to 8 levels (order → line_items → tax_lines → price_set → ...).
MAX_NESTING = 64
# A WooCommerce key is "{webhook id}:{topic}:{64 hex digits}": together they fit the column.
WOO_ID_LENGTH = 64
WOO_TOPIC_LENGTH = DELIVERY_KEY_LENGTH - WOO_ID_LENGTH - len("::") - 64
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_NOT_BRACKETS_OR_QUOTES = bytes(b for b in range(256) if b not in b'[]{}"')
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
NOT_JSON = object()  # a body that is not JSON at all is kept, and fails mapping with its reason


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
