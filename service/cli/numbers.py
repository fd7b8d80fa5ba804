"""Whole-number options, written as service/text.py says numbers are written."""

from __future__ import annotations

from typing import Any

import click

from service.text import parse_whole_number


class _AsciiDigits(click.ParamType):
    """click's int() would take " 1_0 " and other scripts' digits; refuse them first."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            try:
                value = parse_whole_number(value)
            except ValueError as error:
                self.fail(str(error), param, ctx)
        return super().convert(value, param, ctx)


class WholeNumber(_AsciiDigits, click.types.IntParamType):
    """An integer option."""


class WholeNumberRange(_AsciiDigits, click.IntRange):
    """An integer option within bounds."""


WHOLE_NUMBER = WholeNumber()
