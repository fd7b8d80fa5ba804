"""Signature checks over the raw request bytes, always in constant time.

Shopify and WooCommerce send base64(HMAC-SHA256(body, secret)). Standard Webhooks
signs "{id}.{timestamp}.{body}" with the base64-decoded part of a `whsec_` secret
and sends space-separated `v1,<base64>` entries, any one of which may match.

An `Arrival`'s check (`service.webhooks.arrival`), run by `service.webhooks.intake`
with each candidate sender's secrets.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import re
from collections.abc import Iterable
from datetime import datetime, timedelta

STANDARD_TOLERANCE = timedelta(minutes=5)
# ASCII digits only (int() takes "1_000" and other scripts' digits), and few enough that
# the time converts to a float: 400 digits would overflow the comparison with now.
UNIX_SECONDS = re.compile("[0-9]{1,15}")


class SignatureRejected(Exception):
    """The delivery is not proven to come from the configured sender."""


def body_signature(secret: str, body: bytes) -> str:
    """base64 HMAC-SHA256 of the body: what Shopify and WooCommerce send."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify_body_signature(secrets: Iterable[str], body: bytes, header: str | None) -> str:
    """Shopify (X-Shopify-Hmac-Sha256) and WooCommerce (X-WC-Webhook-Signature).

    Returns the secret that signed the body.
    """
    if not header:
        raise SignatureRejected("the signature header is missing")
    given = header.strip().encode()
    for secret in secrets:
        # WooCommerce signs with the secret after decoding HTML entities; for a secret
        # without any the two are the same.
        for key in dict.fromkeys((secret, html.unescape(secret))):
            if hmac.compare_digest(body_signature(key, body).encode(), given):
                return secret
    raise SignatureRejected("the signature does not match any secret of this sender")


def standard_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` entry, as a Standard Webhooks sender computes it."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    mac = hmac.new(_standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify_standard(
    secrets: Iterable[str],
    message_id: str | None,
    timestamp: str | None,
    body: bytes,
    header: str | None,
    now: datetime,
) -> str:
    """Standard Webhooks v1: headers present, timestamp within 5 minutes, one entry matching.

    Returns the secret that signed the message.
    """
    if not message_id or not timestamp or not header:
        raise SignatureRejected("webhook-id, webhook-timestamp and webhook-signature are required")
    if not UNIX_SECONDS.fullmatch(timestamp):
        raise SignatureRejected("webhook-timestamp is not a Unix time in seconds")
    sent_at = int(timestamp)
    if abs(now.timestamp() - sent_at) > STANDARD_TOLERANCE.total_seconds():
        raise SignatureRejected("webhook-timestamp is more than 5 minutes away from now")
    given = [entry.strip().encode() for entry in header.split(" ") if entry.startswith("v1,")]
    for secret in secrets:
        try:
            expected = standard_signature(secret, message_id, sent_at, body).encode()
        except ValueError:
            continue  # a malformed stored secret matches nothing
        if any(hmac.compare_digest(expected, entry) for entry in given):
            return secret
    raise SignatureRejected("no webhook-signature entry matches a secret of this sender")


def _standard_key(secret: str) -> bytes:
    encoded = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError("not a base64 Standard Webhooks secret") from None
