"""One rule for every path and query parameter: text the databases can store.

It is checked for every request before its view runs, so an endpoint added later
is covered without a line of its own (tests/test_parameters.py walks the served
OpenAPI document to prove it). The rule is the one record fields follow
(`service.text.storable`): no id a batch may store is unreachable by its path.

Values are read from the raw WSGI strings with undecodable bytes kept as lone
surrogates, which the rule refuses. Werkzeug would read them as U+FFFD (paths)
or leave them percent-encoded (queries): a look-up of some other id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask, current_app, request
from werkzeug.exceptions import HTTPException

from service.failures import InvalidInput
from service.text import storable

Parameter = tuple[str, str]  # (name, value)


def install_parameter_check(app: Flask) -> None:
    """Refuse, with a 422 naming it, any path or query parameter that is not storable text."""
    app.before_request(refuse_unstorable_parameters)


def refuse_unstorable_parameters() -> None:
    if request.routing_exception is not None:
        return  # a 404 or 405 follows: the route has no parameters to speak of
    errors = [
        *_problems("path", _path_parameters()),
        *_problems("query", _query_parameters()),
    ]
    if errors:
        raise InvalidInput("Some parameters are invalid; see errors.", errors=errors)


def _problems(location: str, parameters: Iterable[Parameter]) -> list[dict[str, str]]:
    found = []
    for name, value in parameters:
        for text, prefix in ((name, "its name "), (value, "")):
            try:
                storable(text)
            except ValueError as error:
                found.append(
                    {"field": _shown(name), "in": location, "message": prefix + str(error)}
                )
                break
    return found


def _shown(name: str) -> str:
    """A parameter's name as the problem document can carry it (undecodable bytes as U+FFFD)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _raw_text(environ_key: str) -> str:
    """A WSGI string (bytes as latin-1, PEP 3333) as UTF-8, keeping undecodable bytes."""
    raw = request.environ.get(environ_key, "").encode("latin-1", "replace")
    return raw.decode("utf-8", "surrogateescape")


def _path_parameters() -> Iterable[Parameter]:
    values: Mapping[str, Any] = request.view_args or {}
    path = _raw_text("PATH_INFO")
    if values and not _is_unicode(path):
        values = _routed(path)
    return [(name, value) for name, value in values.items() if isinstance(value, str)]


def _routed(path: str) -> Mapping[str, Any]:
    """The parameters of `path` as it came (undecodable bytes kept): which one holds them."""
    adapter = current_app.create_url_adapter(request)
    try:
        _, values = adapter.match(path, method=request.method)  # type: ignore[union-attr]
    except HTTPException:
        return {"path": path}
    return values


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _query_parameters() -> Iterable[Parameter]:
    if not request.environ.get("QUERY_STRING"):
        return []
    return parse_qsl(_raw_text("QUERY_STRING"), keep_blank_values=True, errors="surrogateescape")
