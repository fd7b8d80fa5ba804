"""Whole-number parameters, written as service/text.py says numbers are written."""

from __future__ import annotations

from typing import Any

from marshmallow import fields

from service.text import parse_whole_number


class WholeNumber(fields.Integer):
    """An integer; as text, ASCII digits only (int() takes " 1_0 " and other scripts)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, str):
            try:
                value = parse_whole_number(value)
            except ValueError:
                raise self.make_error("invalid") from None
        return super()._deserialize(value, attr, data, **kwargs)
