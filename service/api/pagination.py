"""Opaque cursors and the Link header of paginated lists."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

from flask import request

from service.failures import InvalidInput


def encode_cursor(after: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The position a cursor points after; 0 when there is none."""
    if not cursor:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        after = json.loads(base64.urlsafe_b64decode(padded))["after"]
        if isinstance(after, int) and not isinstance(after, bool) and 0 <= after < 2**63:
            return after
    except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: absurd nesting
        pass
    raise InvalidInput(
        "The cursor is not one this service issued.",
        errors=[{"field": "cursor", "in": "query", "message": "is not a valid cursor"}],
    )


def page(
    items: list[dict[str, Any]], next_after: int | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The page body and its headers: `Link: <...>; rel="next"` when there is more."""
    if next_after is None:
        return {"items": items, "next_cursor": None}, {}
    cursor = encode_cursor(next_after)
    args = request.args.to_dict()
    args["cursor"] = cursor
    link = f'<{request.base_url}?{urlencode(args)}>; rel="next"'
    return {"items": items, "next_cursor": cursor}, {"Link": link}
