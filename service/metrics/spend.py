"""Acquisition spend per period, spread evenly over each record's days (METRICS.md §1)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import date, timedelta
from fractions import Fraction

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.models import AcquisitionSpend


def spend_per_period(
    session: Session, first_days: Sequence[date], channel: str | None
) -> list[Fraction]:
    """Exact spend, in minor units, of each period [first_days[k], first_days[k+1]).

    Each day of a record gets exactly amount / days, unrounded; records with the
    same dates are summed in SQL first, so Python sees one row per date range.
    """
    n = len(first_days) - 1
    totals = [Fraction(0)] * n
    last_day = first_days[-1] - timedelta(days=1)
    statement = (
        select(
            AcquisitionSpend.start_date,
            AcquisitionSpend.end_date,
            func.sum(AcquisitionSpend.amount_minor).label("amount"),
        )
        .where(AcquisitionSpend.start_date <= last_day, AcquisitionSpend.end_date >= first_days[0])
        .group_by(AcquisitionSpend.start_date, AcquisitionSpend.end_date)
    )
    if channel is not None:
        statement = statement.where(AcquisitionSpend.channel == channel)
    for start, end, amount in session.execute(statement):
        per_day = Fraction(int(amount), (end - start).days + 1)
        k = max(bisect_right(first_days, start) - 1, 0)
        while k < n and first_days[k] <= end:
            overlap = min(end, first_days[k + 1] - timedelta(days=1)) - max(start, first_days[k])
            totals[k] += per_day * (overlap.days + 1)
            k += 1
    return totals
