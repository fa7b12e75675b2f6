"""`voxmeter alert create|list|delete|deliveries` (docs/behaviour.md, Alerts)."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import click
from rich.table import Table

from voxmeter.adapters.secret_box import open_secret_box
from voxmeter.domain.alerts import Alert, On, origin
from voxmeter.domain.months import from_micros
from voxmeter.domain.quantities import format_micro
from voxmeter.entrypoints.cli.admin import console
from voxmeter.entrypoints.cli.common import (
    db_option,
    format_option,
    friendly,
    open_context,
    settings_for,
)
from voxmeter.service import alerts, tenancy
from voxmeter.service.alerts import MAX_LISTED, month_text

_UTC = ZoneInfo("UTC")


def _utc(micros: int) -> str:
    return from_micros(micros, _UTC).isoformat(timespec="seconds")


@click.group()
def alert() -> None:
    """Alerts on a month's figure, forecast or amount, or on a mirror's staleness, delivered
    to a webhook."""


@alert.command("create")
@click.option("--operation", "operation_name", required=True, help="The operation's name.")
@click.option("--server", default=None, help="The operation's server, when its name is on several.")
@click.option("--product", default=None, help="The product's api value (or --total).")
@click.option(
    "--total", is_flag=True, help="The statement total instead of one product (default: off)."
)
@click.option(
    "--threshold",
    default=None,
    help="Fires when the value reaches this decimal (not with --on stale).",
)
@click.option(
    "--on",
    "measure",
    type=click.Choice([str(o) for o in On]),
    default=None,
    help="What is measured (default: figure for a product, amount for --total); stale: the "
    "mirror has had no successful sweep within its staleness limit (no --product, --total or "
    "--threshold).",
)
@click.option("--webhook", required=True, help="The http(s) URL that receives the POST.")
@click.option(
    "--secret",
    default=None,
    help="A whsec_ signing secret (default: one is generated and printed once).",
)
@click.option(
    "--payload",
    type=click.Choice(["json", "slack"]),
    default="json",
    show_default=True,
    help='The event as JSON, or a Slack/Teams {"text"} message.',
)
@db_option
@friendly
def alert_create(
    operation_name: str,
    server: str | None,
    product: str | None,
    total: bool,
    threshold: str | None,
    measure: str | None,
    webhook: str,
    secret: str | None,
    payload: str,
    db: str,
) -> None:
    """Create an alert. A generated secret is the last line of stdout, shown only this once."""
    if measure == On.STALE:
        if total:
            raise click.UsageError("--on stale watches a whole mirror: leave out --total")
    elif total == (product is not None):
        raise click.UsageError("give either --product P or --total")
    ctx = open_context(db)
    op = tenancy.find_operation(ctx, operation_name, server)
    settings = settings_for(db)
    box = open_secret_box(settings.database_url, settings.secret_key)
    made = alerts.create_alert(
        ctx,
        box,
        op,
        product=product,
        threshold=threshold,
        on=measure or ("amount" if total else "figure"),
        url=webhook,
        secret=secret,
        payload=payload,
    )
    a = made.alert
    what = (
        "stale"
        if a.on is On.STALE
        else f"{a.product or 'total'} {a.on} >= {format_micro(a.threshold)}"
    )
    click.echo(f"alert {a.id} on {what} for {op.server}/{op.name} -> {origin(a.url)}")
    if made.generated:
        click.echo("signing secret (shown only now):")
        click.echo(made.secret)


@alert.command("list")
@click.option("--operation", "operation_name", default=None, help="One operation (default: all).")
@click.option("--server", default=None, help="The operation's server, when its name is on several.")
@db_option
@friendly
def alert_list(operation_name: str | None, server: str | None, db: str) -> None:
    """List live alerts (never their secrets)."""
    ctx = open_context(db)
    op = tenancy.find_operation(ctx, operation_name, server) if operation_name else None
    names = {o.id: f"{o.server}/{o.name}" for o in ctx.storage.operations()}
    table = Table("id", "operation", "product", "on", "threshold", "webhook", "payload", "created")
    for a in alerts.list_alerts(ctx, op):
        table.add_row(
            str(a.id),
            names.get(a.operation_id, str(a.operation_id)),
            _target(a),
            str(a.on),
            "-" if a.on is On.STALE else format_micro(a.threshold),
            origin(a.url),
            str(a.payload),
            _utc(a.created),
        )
    console().print(table)


def _target(a: Alert) -> str:
    """A product, the statement total, or for a staleness alert none ("-")."""
    return "-" if a.on is On.STALE else a.product or "total"


@alert.command("delete")
@click.argument("alert_id", type=int)
@db_option
@friendly
def alert_delete(alert_id: int, db: str) -> None:
    """Delete an alert (its deliveries stay listed)."""
    ctx = open_context(db)
    gone = alerts.delete_alert(ctx, alert_id)
    click.echo(f"deleted alert {gone.id}")


@alert.command("deliveries")
@click.option("--alert", "alert_id", type=int, default=None, help="One alert (default: all).")
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_LISTED),
    default=100,
    show_default=True,
    help="Attempts listed at most, newest first.",
)
@format_option("table", "json")
@db_option
@friendly
def alert_deliveries(alert_id: int | None, limit: int, fmt: str, db: str) -> None:
    """Every delivery attempt, newest first: time, status or error, duration; and the
    deliveries not yet attempted."""
    ctx = open_context(db)
    rows: list[dict[str, object]] = []
    for d in ctx.storage.deliveries(None, alert_id, limit):
        if d.attempts == 0:
            rows.append(_row(d.id, d.alert_id, d.month, d.state, None, None, None, None))
    for d, t in ctx.storage.delivery_attempts(None, alert_id, limit):
        rows.append(
            _row(d.id, d.alert_id, d.month, d.state, _utc(t.time), t.status, t.error, t.duration)
        )
    rows = rows[:limit]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
        return
    table = Table("delivery", "alert", "month", "state", "attempt", "status", "error", "ms")
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r.values()))
    console().print(table)


def _row(
    delivery: int,
    alert_id: int,
    month: int,
    state: str,
    time: str | None,
    status: int | None,
    error: str | None,
    duration: int | None,
) -> dict[str, object]:
    return {
        "delivery": delivery,
        "alert": alert_id,
        "month": month_text(month),
        "state": state,
        "attempt": time,
        "status": status,
        "error": error,
        "ms": None if duration is None else duration // 1000,
    }
