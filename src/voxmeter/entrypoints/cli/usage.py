"""`voxmeter usage`: this month's (or a past month's) consumption from any Wolkvox-compatible
server, the hosted one by default. The token comes from the environment and is never printed."""

from __future__ import annotations

import csv
import io
import json
import os

import click
from rich.console import Console
from rich.table import Table

from voxmeter.client import Client, UsageRow, VoxmeterClientError
from voxmeter.domain.months import Month, MonthError
from voxmeter.domain.quantities import format_decimal
from voxmeter.entrypoints.cli.common import format_option

_COLUMNS = ("api", "description", "items", "unit", "operation", "date")


def _values(row: UsageRow) -> dict[str, str]:
    return {
        "api": row.api,
        "description": row.description or "",
        "items": format_decimal(row.items),
        "unit": row.unit or "",
        "operation": row.operation or "",
        "date": row.date.isoformat() if row.date else "",
    }


def _render(rows: list[UsageRow], fmt: str) -> str:
    values = [_values(r) for r in rows]
    if fmt == "json":
        return json.dumps(values, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(values)
        return out.getvalue().rstrip("\n")
    table = Table(*_COLUMNS)
    for v in values:
        table.add_row(*(v[c] for c in _COLUMNS))
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text().rstrip("\n")


@click.command()
@click.option("--server", required=True, help="4-digit server code, e.g. 9901.")
@click.option(
    "--base-url",
    default=None,
    help="The server to query (default: the hosted https://wv{server}.wolkvox.com).",
)
@click.option(
    "--token-env", required=True, help="Name of the environment variable holding the token."
)
@click.option("--api", "api", default=None, help="One product (api value).")
@click.option("--all", "all_products", is_flag=True, help="Every product (the default).")
@click.option(
    "--month",
    default=None,
    help="YYYY-MM, on servers that support past months (default: the current month).",
)
@format_option("table", "json", "csv")
def usage(
    server: str,
    base_url: str | None,
    token_env: str,
    api: str | None,
    all_products: bool,
    month: str | None,
    fmt: str,
) -> None:
    """Show consumption per product. Errors are one line on stderr with a non-zero exit."""
    if api and all_products:
        raise click.UsageError("choose --api or --all, not both")
    token = os.environ.get(token_env, "")
    if not token:
        raise click.ClickException(f"environment variable {token_env} is empty or not set")
    if month is not None:
        try:
            Month.parse(month)
        except MonthError as exc:
            raise click.ClickException(str(exc)) from exc
    try:
        with Client(server=server, token=token, base_url=base_url, process_lock=True) as client:
            rows = client.usage(api, month) if api else client.usage_all(month)
    except VoxmeterClientError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
    click.echo(_render(rows, fmt))
