"""The one way a metrics question is answered: refresh, snapshot, cache, entity tag.

The API, the CLI and any later report (cohorts, customer value, ...) ask here
with a ReportKind; HTTP (headers, 304) stays with the caller, which only says
which tags its asker already holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from service.change_log import changes_since, current_version
from service.db import Database
from service.metrics.cache import CachedReport, ReportCache
from service.metrics.purchase_history import refresh_stale
from service.metrics.report_kind import ReportKind, State


@dataclass(frozen=True)
class MetricsAnswer:
    body: dict[str, Any] | None  # None when the asker already holds `tag` (not modified)
    tag: str  # a strong entity tag, quoted; it changes whenever the data does


def answer(
    database: Database,
    report: ReportKind[Any],
    cache: ReportCache | None = None,
    if_none_match: Callable[[str], bool] | None = None,
) -> MetricsAnswer:
    """`report` as the data stands now; no body when `if_none_match(tag)` says it is held."""
    refresh_purchase_histories(database)
    with database.reading() as session:
        return answer_in_session(session, report, cache, if_none_match)


def refresh_purchase_histories(database: Database) -> None:
    """Bring the purchase histories queued by writers up to date (each answer does this first).

    Also worth calling after a large import or from a periodic task, so that the
    next answer does not pay for it.
    """
    refresh_stale(database)


def answer_in_session(
    session: Session,
    report: ReportKind[Any],
    cache: ReportCache | None = None,
    if_none_match: Callable[[str], bool] | None = None,
) -> MetricsAnswer:
    """`answer` in a reading session the caller holds, with the histories as they are
    (several reports from one snapshot, or a read that must not refresh)."""
    version = current_version(session)
    tag = entity_tag(report.cache_key(), version)
    if if_none_match is not None and if_none_match(tag):
        return MetricsAnswer(None, tag)
    return MetricsAnswer(_body(session, report, version, cache), tag)


def entity_tag(key: Hashable, version: int) -> str:
    digest = hashlib.sha256(repr((key, version)).encode()).hexdigest()[:32]
    return f'"{digest}"'


def _body(
    session: Session, report: ReportKind[State], version: int, cache: ReportCache | None
) -> dict[str, Any]:
    cached = cache.get(report, session) if cache is not None else None
    if cached is not None and cached.version == version and cached.body is not None:
        return cached.body
    if cached is None:
        state = report.count(session)
    elif cached.version != version:
        state = report.recount(session, cached.state, changes_since(session, cached.version))
    else:  # loaded from the database at this version: only the body is missing
        state = cached.state
    body = report.render(session, state)
    if cache is not None:
        computed = cached is None or cached.version != version
        cache.put(report, CachedReport(version, state, body), computed=computed)
    return body
