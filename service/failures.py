"""What the core refuses, said so that the caller can act on it, whoever the caller is.

The core raises these; the HTTP layer (service/errors.py) gives each kind its status
and problem type, the command line prints the detail. No HTTP here: a worker or a
command that ingests records does not load a web framework to refuse one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class Failure(Exception):
    """A refusal the caller can act on: a sentence, and the fields it is about.

    `errors` lists what was wrong, one entry a message: {"field", "in"?, "message", ...}.
    """

    def __init__(self, detail: str, errors: Sequence[Mapping[str, Any]] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors or [])


class MalformedInput(Failure):
    """The input cannot be read at all (not JSON, nested too deep, an identity too long)."""


class InvalidInput(Failure):
    """The input was read, and some of its values are not acceptable; see `errors`."""


class Conflict(Failure):
    """The request contradicts what is stored, or what was stored meanwhile."""


class NotAuthentic(Failure):
    """Nothing proves who sent the input (no secret verifies its signature)."""


class RateLimited(Failure):
    """The caller has used its requests for now; one will be allowed in `retry_after` s."""

    def __init__(self, detail: str, retry_after: int):
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(Failure):
    """Something the work needs cannot be used now (e.g. stored secrets that do not
    decrypt); worth trying again in `retry_after` s."""

    def __init__(self, detail: str, retry_after: int):
        super().__init__(detail)
        self.retry_after = retry_after
