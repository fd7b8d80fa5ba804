"""Acquisition channel and guest identity, as the platforms' payloads let us derive them."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs, urlsplit


def channel_from(
    landing_url: str | None, referring_url: str | None, fallback: str | None
) -> str | None:
    """utm_source of the landing URL, else the referring site's host, else the fallback.

    The result is normalised later like any channel (trimmed, lower-cased).
    """
    if landing_url:
        utm_source = parse_qs(urlsplit(landing_url).query).get("utm_source", [""])[0].strip()
        if utm_source:
            return utm_source
    host = _host(referring_url)
    if host:
        return host
    return fallback or None


def _host(url: str | None) -> str | None:
    if not url or not url.strip():
        return None
    url = url.strip()
    try:
        host = urlsplit(url if "//" in url else "//" + url).hostname
    except ValueError:
        return None
    return host.removeprefix("www.") if host else None


def guest_customer_id(email: str | None, order_id: str) -> str:
    """A stable id for a customer without an account: a hash of the e-mail, never the e-mail.

    Without an e-mail the order is its own customer.
    """
    normalised = (email or "").strip().lower()
    if not normalised:
        return f"guest-order-{order_id}"
    return "guest-" + hashlib.sha256(normalised.encode()).hexdigest()[:40]
