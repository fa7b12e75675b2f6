"""`voxmeter audit`: the audit log, every operation's or one's, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime

import click
from rich.console import Console
from rich.table import Table

from voxmeter.domain.audit import AuditEntry
from voxmeter.domain.months import calendar, from_micros, to_micros
from voxmeter.entrypoints.cli.common import db_option, format_option, friendly, open_context
from voxmeter.errors import ConfigError
from voxmeter.service import audit, tenancy
from voxmeter.service.context import Context
from voxmeter.service.ports import Storage

_COLUMNS = ("time", "actor", "action", "operation", "details")


def _since(text: str | None) -> int | None:
    """`--since YYYY-MM-DD`: from that day's UTC midnight."""
    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
        if len(text) != 10:
            raise ValueError(text)
    except ValueError as exc:
        raise ConfigError(f"--since must be a date, YYYY-MM-DD (got {text!r})") from exc
    return to_micros(datetime(day.year, day.month, day.day, tzinfo=UTC))


def _entries(
    ctx: Context[Storage], operation_id: int | None, start: int | None
) -> Iterator[AuditEntry]:
    """Every entry from `start` on, a page at a time (the log may be long)."""
    after: tuple[int, int] | None = None
    while True:
        page = audit.entries(ctx, operation_id, start, None, after)
        yield from page.entries
        if page.next_after is None:
            return
        after = page.next_after


def _values(entry: AuditEntry, names: dict[int, str]) -> dict[str, object]:
    when = from_micros(entry.time, calendar("UTC").zone)
    return {
        "time": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": entry.actor,
        "action": entry.action,
        "operation": "" if entry.operation_id is None else names.get(entry.operation_id, ""),
        "details": json.loads(entry.details),
    }


def _render(rows: list[dict[str, object]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False)
    flat = [{**r, "details": json.dumps(r["details"], ensure_ascii=False)} for r in rows]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat)
        return out.getvalue().rstrip("\n")
    table = Table(*_COLUMNS)
    for r in flat:
        table.add_row(*(str(r[c]) for c in _COLUMNS))
    console = Console(width=400, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text().rstrip("\n")


@click.command("audit")
@click.option("--operation", "operation_name", default=None, help="Only this operation's entries.")
@click.option(
    "--server",
    default=None,
    help="The operation's server (4 digits), when its name is used on several servers.",
)
@click.option("--since", default=None, help="Only entries from this day on (YYYY-MM-DD, UTC).")
@format_option("table", "json", "csv")
@db_option
@friendly
def audit_command(
    operation_name: str | None, server: str | None, since: str | None, fmt: str, db: str
) -> None:
    """List who changed money or access, oldest first (times in UTC)."""
    start = _since(since)
    ctx = open_context(db)
    only = tenancy.find_operation(ctx, operation_name, server).id if operation_name else None
    names = {op.id: f"{op.server}/{op.name}" for op in ctx.storage.operations()}
    rows = [_values(e, names) for e in _entries(ctx, only, start)]
    click.echo(_render(rows, fmt))
