"""Rules for text taken from outside (bodies, paths, queries, files): one rule each.

- Any text the service keeps or looks up must be storable by both databases.
- A number written as text is ASCII digits. Python's int() and Decimal() also
  take surrounding spaces, "_" between digits and the digits of every script
  (Arabic-Indic, full-width, ...), which no client means and PostgreSQL refuses.
"""

from __future__ import annotations

import re

# An optional minus, then ASCII digits; a range check says what a sign means.
WHOLE_NUMBER = re.compile(r"-?[0-9]+")
_NOT_UNICODE = "is not valid Unicode text (undecodable UTF-8 or a lone surrogate)"


def storable(text: str) -> str:
    """`text` if both databases can store it: UTF-8 encodable, without NUL characters."""
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(_NOT_UNICODE) from None
    return text


def parse_whole_number(text: str) -> int:
    """An integer written with ASCII digits and at most a leading minus, nothing else."""
    if not WHOLE_NUMBER.fullmatch(text):
        raise ValueError(f"{text!r} is not a whole number written with the digits 0-9")
    return int(text)
