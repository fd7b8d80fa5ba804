"""Field-level values taken from outside: each parsed or normalised, or ValueError saying why.

The rules of METRICS.md §1 for one value at a time (an id, an instant, a
channel, a country, ...), shared by the ingested records
(`service.ingestion.records`, which names the field in its error) and the
metrics filters (`service.metrics.query`, which reads channel and country the
way they were stored). Plain Python, no framework: the bulk paths call these
millions of times.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pycountry

from service.models import ORDER_STATUSES, UNKNOWN_CHANNEL
from service.text import storable

MAX_ID_LENGTH = 255
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_VALUE_LENGTH = 1000

# RFC 3339 date-time: an offset (or Z) is mandatory.
# ASCII: \d alone would also take other scripts' digits (service/text.py).
_INSTANT = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_COUNTRIES = frozenset(country.alpha_2 for country in pycountry.countries)
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


def parse_identifier(value: Any) -> str:
    """A client id: 1-255 characters; JSON integers are accepted as their digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if not value.strip():
        raise ValueError("must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(f"must be at most {MAX_ID_LENGTH} characters, got {len(value)}")
    return storable(value)


def parse_instant(value: Any) -> datetime:
    """An RFC 3339 date-time with an offset, as a UTC instant (to the microsecond)."""
    if not isinstance(value, str) or not _INSTANT.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an RFC 3339 date-time with an offset, "
            "e.g. 2024-05-01T12:30:00Z or 2024-05-01T14:30:00+02:00"
        )
    # RFC 3339 allows a lower-case t and z; Python 3.11's parser does not.
    text = value.upper() if "t" in value or "z" in value else value
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a real date and time") from None
    try:
        return instant if instant.tzinfo is UTC else instant.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value!r} is outside the years 1 to 9999 in UTC") from None


def parse_date(value: Any) -> date:
    """A calendar date, YYYY-MM-DD."""
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError(f"{value!r} is not a date in the form YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a real date") from None


def normalise_channel(value: Any) -> str:
    """Trimmed and lower-cased; missing or empty means 'unknown' (METRICS.md §1)."""
    if value is None:
        return UNKNOWN_CHANNEL
    if not isinstance(value, str):
        raise ValueError("must be a string")
    value = value.strip().lower()
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(f"must be at most {MAX_ID_LENGTH} characters")
    return storable(value) or UNKNOWN_CHANNEL


def normalise_country(value: Any) -> str | None:
    """An ISO 3166-1 alpha-2 code, upper-cased; empty means none."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    code = value.strip().upper()
    if not code:
        return None
    if code not in _COUNTRIES:
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return code


def parse_attributes(value: Any) -> dict[str, str]:
    """A flat object of string keys to string values."""
    if not isinstance(value, dict):
        raise ValueError("must be an object of string keys to string values")
    if len(value) > MAX_ATTRIBUTES:
        raise ValueError(f"must have at most {MAX_ATTRIBUTES} keys")
    for key, item in value.items():
        if not isinstance(item, str):
            raise ValueError(f"value of {key!r} must be a string (attributes are flat)")
        if len(key) > MAX_ID_LENGTH or len(item) > MAX_ATTRIBUTE_VALUE_LENGTH:
            raise ValueError(f"{key!r} is too long")
        storable(key)
        storable(item)
    return dict(value)


def parse_boolean(value: Any) -> bool:
    """true/false; the strings 'true', 'false', '1', '0' are accepted for CSV files."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ValueError("must be true or false")


def parse_status(value: Any) -> str:
    """One of the order statuses METRICS.md §1 knows, as is."""
    if value not in ORDER_STATUSES:
        raise ValueError(f"{value!r} is not one of {', '.join(ORDER_STATUSES)}")
    return str(value)
