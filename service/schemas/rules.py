r"""The value rules of `service.values` as JSON Schema, so the document says what is enforced.

Patterns are written for both regex dialects that read them (ECMA-262 in clients,
Python's `re` in generators): explicit character classes, no flags or look-arounds. Each is
exact: a value the parser accepts matches, and a value it refuses does not.
"""

from __future__ import annotations

from typing import Any

import pycountry

from service.money import MAX_INTEGER_DIGITS
from service.values import MAX_ID_LENGTH

# What str.strip() removes (str.isspace()), spelled out: ECMA-262's \s differs from it.
SPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_S = f"[{SPACE}]*"
# Not blank and no NUL; the length is checked by maxLength.
IDENTIFIER_PATTERN = rf"^[^\x00]*[^{SPACE}\x00][^\x00]*$"
# At most MAX_ID_LENGTH characters once trimmed, no NUL; blank means `unknown`.
CHANNEL_PATTERN = (
    rf"^{_S}(?:[^{SPACE}\x00](?:[^\x00]{{0,{MAX_ID_LENGTH - 2}}}[^{SPACE}\x00])?)?{_S}$"
)
# RFC 3339 with a mandatory offset (or Z), as `parse_instant` reads it.
INSTANT_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# Text the databases can store (service.text.storable); every path and query parameter.
STORABLE_PATTERN = r"^[^\x00]*$"
BOOLEAN_TEXT_PATTERN = rf"^{_S}(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|1|0){_S}$"


def any_case(text: str) -> str:
    """A pattern matching `text` in any mix of upper and lower case."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in text)


def trimmed_code(codes: list[str], *, optional: bool = False) -> str:
    """One of `codes`, in any case, with surrounding whitespace; blank too if `optional`."""
    choice = "|".join(any_case(code) for code in codes)
    return rf"^{_S}(?:{choice}){'?' if optional else ''}{_S}$"


COUNTRY_PATTERN = trimmed_code(sorted(c.alpha_2 for c in pycountry.countries), optional=True)


def identifier(**extra: Any) -> dict[str, Any]:
    """OpenAPI metadata of a client id: 1-255 characters, not blank; or a JSON integer."""
    return {
        "type": ["string", "integer"],
        "minLength": 1,
        "maxLength": MAX_ID_LENGTH,
        "pattern": IDENTIFIER_PATTERN,
        **extra,
    }


def money_pattern(exponent: int) -> str:
    """A decimal string with at most `exponent` places that count (trailing zeros do not)."""
    places = rf"(?:\.[0-9]{{1,{exponent}}}0*)?" if exponent else r"(?:\.0+)?"
    return rf"^[0-9]{{1,{MAX_INTEGER_DIGITS}}}{places}$"


def amount(exponent: int, nullable: bool = False) -> dict[str, Any]:
    """An incoming amount of a currency with `exponent` places, as a string or exact number."""
    return {
        "anyOf": [
            *([{"type": "null"}] if nullable else []),
            {"type": "string", "pattern": money_pattern(exponent)},
            {
                "type": "number",
                "minimum": 0,
                "exclusiveMaximum": 10**MAX_INTEGER_DIGITS,
                "multipleOf": 10**-exponent if exponent else 1,
            },
        ]
    }
