"""`customer-metrics metrics`: the metrics report for analysts, and upkeep of what it reads."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Any

import click
import simplejson
from flask.cli import with_appcontext

from service.change_log import ALL_TIME, record_change
from service.cli.numbers import WHOLE_NUMBER
from service.extensions import database, settings
from service.metrics import (
    InvalidQuery,
    MetricsQuery,
    PeriodReport,
    answer,
    rebuild_purchase_history,
)
from service.metrics.periods import INTERVALS

FORMATS = ("table", "csv", "json")


@click.group(invoke_without_command=True)
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), help="First day (YYYY-MM-DD).")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), help="Last day, included.")
@click.option("--interval", type=click.Choice(INTERVALS), default="month", show_default=True)
@click.option("--tz", default="UTC", show_default=True, help="IANA time zone name.")
@click.option("--churn-window-days", type=WHOLE_NUMBER, default=90, show_default=True)
@click.option("--channel", help="Only customers of this acquisition channel.")
@click.option("--country", help="Only customers of this country.")
@click.option("--source", help="Only customers of this source.")
@click.option("--summary", is_flag=True, help="Take start..end as one single period.")
@click.option("--format", "output", type=click.Choice(FORMATS), default="table", show_default=True)
@click.pass_context
@with_appcontext
def metrics(context: click.Context, **options: Any) -> None:
    """Print the metrics of METRICS.md per period (the same numbers as GET /v1/metrics).

    Example: customer-metrics metrics --start 2024-01-01 --end 2024-12-31 --format csv
    """
    if context.invoked_subcommand is not None:
        return
    if options["start"] is None or options["end"] is None:
        raise click.UsageError("--start and --end are required.")
    output = options.pop("output")
    query = _query(options)
    report = answer(database(), PeriodReport(query, settings().reporting_currency)).body
    assert report is not None  # asked without If-None-Match: always a body
    periods = [report["period"]] if query.single_period else report["periods"]
    if output == "json":
        click.echo(simplejson.dumps(report, use_decimal=True, indent=2))
    elif output == "csv":
        click.echo(_csv(periods), nl=False)
    else:
        click.echo(_table(periods, query))


@metrics.command()
@with_appcontext
def rebuild() -> None:
    """Recompute every order's place in its customer's history (after a bulk load)."""
    with database().transaction() as session:
        changed = rebuild_purchase_history(session)
        # Rows loaded around the service were never logged: cached reports start over.
        record_change(session, ALL_TIME, datetime.now(UTC))
    click.echo(f"{changed} orders updated")


def _query(options: dict[str, Any]) -> MetricsQuery:
    start: date = options.pop("start").date()
    end: date = options.pop("end").date()
    single = options.pop("summary")
    if single:
        options.pop("interval")
    try:
        return MetricsQuery.create(start, end, single_period=single, **options)
    except InvalidQuery as invalid:
        problems = "; ".join(
            f"--{e['field'].replace('_', '-')} {e['message']}" for e in invalid.errors
        )
        raise click.UsageError(problems) from None


def _csv(periods: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(periods[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in p.items()} for p in periods)
    return buffer.getvalue()


def _table(periods: list[dict[str, Any]], query: MetricsQuery) -> str:
    """Fields down, periods across, as an analyst reads a report."""
    names = [name for name in periods[0] if name not in ("start", "end")]
    header = ["", *(p["start"][:10] for p in periods)]
    rows = [[name, *("-" if p[name] is None else str(p[name]) for p in periods)] for name in names]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        f"{query.tz}, churn window {query.churn_window_days} days, "
        f"filters {query.filters.as_dict()}; periods start on the dates shown",
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(header)
        ),
    ]
    for row in rows:
        lines.append(
            "  ".join(
                cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                for i, cell in enumerate(row)
            )
        )
    return "\n".join(lines)
