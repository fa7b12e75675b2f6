"""`voxmeter statement`: one operation's statement of a month, or every operation's (export for
invoicing), as JSON or CSV on stdout."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

import click

from voxmeter.domain import statements
from voxmeter.domain.months import Month, MonthError, calendar
from voxmeter.entrypoints.cli.common import db_option, format_option, friendly, open_context
from voxmeter.entrypoints.wire.statement_csv import to_csv
from voxmeter.errors import ConfigError
from voxmeter.service import tenancy
from voxmeter.service.figures import past_month
from voxmeter.service.statements import all_readings, decoded, encoded, month_statement


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """An export builds hundreds of thousands of small objects, none in a reference cycle:
    the cycle collector's passes over them, growing with the heap, would take a third of its
    time and find nothing."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@click.command("statement")
@click.option("--operation", "operation_name", default=None, help="The operation's name.")
@click.option(
    "--server",
    default=None,
    help="The operation's server (4 digits), when its name is used on several servers.",
)
@click.option("--all", "every", is_flag=True, help="Every operation's statement.")
@click.option(
    "--month",
    "month_text",
    default=None,
    help="YYYY-MM (default: the operation's current month; required with --all).",
)
@format_option(
    "json", "csv", help="json: the statement (an array with --all); csv: one row per line."
)
@db_option
@friendly
def statement(
    operation_name: str | None,
    server: str | None,
    every: bool,
    month_text: str | None,
    fmt: str,
    db: str,
) -> None:
    """Print a month's statement: --operation NAME, or --all (a JSON array, or one CSV with the
    operation on every row)."""
    if every == (operation_name is not None):
        raise ConfigError("pass either --operation NAME or --all")
    wanted: Month | None = None
    if month_text is not None:
        try:
            wanted = Month.parse(month_text)
        except MonthError as exc:
            raise ConfigError(str(exc)) from exc
    ctx = open_context(db)
    if every:
        if wanted is None:
            raise ConfigError("--all needs --month YYYY-MM")
        with _no_cycle_collection():
            readings = all_readings(ctx, wanted)
            now = ctx.clock()
            if fmt == "csv":
                out: str | bytes = to_csv(decoded(r, now) for r in readings)
            else:
                out = b"[" + b",".join([encoded(r, now) for r in readings]) + b"]"
        click.echo(out, nl=fmt == "json")
        return
    assert operation_name is not None
    op = tenancy.find_operation(ctx, operation_name, server)
    if wanted is None:
        index = calendar(op.timezone).current_month(ctx.clock())
    else:
        index = past_month(ctx, op, wanted)
    body = month_statement(ctx, op, index)
    if fmt == "csv":
        click.echo(to_csv([statements.decode(body)]), nl=False)
    else:
        click.echo(body)
