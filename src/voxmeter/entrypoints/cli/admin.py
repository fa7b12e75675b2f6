"""Administration commands: operations, tokens, months, maintenance, migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from voxmeter import bootstrap
from voxmeter.domain.months import Month, MonthError, calendar, from_micros
from voxmeter.domain.tenancy import ADMIN, SCOPES
from voxmeter.entrypoints.cli.common import (
    counted,
    db_option,
    friendly,
    open_context,
    settings_for,
)
from voxmeter.entrypoints.cli.mirror import (
    create_from_cli,
    options_given,
    update_from_cli,
    upstream_options,
)
from voxmeter.errors import ConfigError
from voxmeter.service import tenancy
from voxmeter.service.admin_tokens import create_admin_token
from voxmeter.service.maintenance import set_maintenance
from voxmeter.service.months import close_month


def console() -> Console:
    """Full values when piped: rich would otherwise wrap and cut tables at 80 columns."""
    console = Console()
    return console if console.is_terminal else Console(width=400)


def _when(micros: int | None) -> str:
    if micros is None:
        return "-"
    return from_micros(micros, calendar("UTC").zone).strftime("%Y-%m-%d %H:%M:%SZ")


@click.group()
def operation() -> None:
    """Create and list operations (tenants)."""


@operation.command("create")
@click.argument("name")
@click.option("--server", required=True, help="4-digit server code, e.g. 9901.")
@click.option("--timezone", default="UTC", show_default=True, help="IANA timezone.")
@click.option("--licenses", default=1, show_default=True, type=int, help="Sets the daily quota.")
@click.option(
    "--currency",
    default=None,
    help="ISO 4217 billing currency.  [default: $VOXMETER_CURRENCY, else USD]",
)
@click.option(
    "--mirror",
    "is_mirror",
    is_flag=True,
    help="Its figures come from sweeping an upstream server (docs/mirrors.md).  [default: off]",
)
@upstream_options(creating=True)
@db_option
@friendly
def operation_create(
    name: str,
    server: str,
    timezone: str,
    licenses: int,
    currency: str | None,
    is_mirror: bool,
    db: str,
    **upstream: Any,
) -> None:
    """Create operation NAME on a server (with --mirror: a mirror of an upstream operation)."""
    code = currency if currency is not None else settings_for(db).currency
    if is_mirror:
        ctx = open_context(db)
        click.echo(create_from_cli(ctx, db, name, server, timezone, code, licenses, upstream))
        return
    if options_given(**{**upstream, "interval": None, "budget": None, "stale_after": None}):
        raise ConfigError("upstream options need --mirror")
    op = tenancy.create_operation(open_context(db), name, server, timezone, licenses, code)
    click.echo(
        f"created operation {op.name} on server {op.server} ({op.timezone}, "
        f"{counted(op.licenses, 'license')}, {op.daily_quota} requests a day, "
        f"billed in {op.currency})"
    )


@operation.command("update")
@click.argument("name")
@click.option(
    "--server",
    default=None,
    help="The operation's server (4 digits), when its name is used on several servers.",
)
@click.option("--licenses", default=None, type=int, help="Sets the daily quota (at once).")
@click.option("--currency", default=None, help="ISO 4217 billing currency.")
@upstream_options(creating=False)
@db_option
@friendly
def operation_update(
    name: str,
    server: str | None,
    licenses: int | None,
    currency: str | None,
    db: str,
    **upstream: Any,
) -> None:
    """Change operation NAME's licences and/or billing currency, or a mirror's upstream options.

    A running server applies a new licence count within a second (its token cache's lifetime)."""
    ctx = open_context(db)
    if options_given(**upstream):
        op = tenancy.find_operation(ctx, name, server)
        click.echo(update_from_cli(ctx, db, op, upstream))
        if licenses is None and currency is None:
            return
    op = tenancy.update_operation(
        ctx, tenancy.find_operation(ctx, name, server), licenses, currency
    )
    click.echo(
        f"updated operation {op.name} on server {op.server}: "
        f"{counted(op.licenses, 'license')}, {op.daily_quota} requests a day, "
        f"billed in {op.currency}"
    )


@operation.command("list")
@db_option
@friendly
def operation_list(db: str) -> None:
    """List every operation."""
    table = Table("server", "name", "timezone", "licenses", "daily quota", "currency", "created")
    for op in open_context(db).storage.operations():
        table.add_row(
            op.server,
            op.name,
            op.timezone,
            str(op.licenses),
            str(op.daily_quota),
            op.currency,
            _when(op.created),
        )
    console().print(table)


@click.group()
def token() -> None:
    """Create, list and revoke tokens."""


@token.command("create")
@click.option(
    "--operation",
    "operation_name",
    default=None,
    help="The operation's name (required unless --admin).",
)
@click.option(
    "--server",
    default=None,
    help="The operation's server (4 digits), when its name is used on several servers.",
)
@click.option("--description", required=True, help="What the token is for (shown by token list).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(SCOPES),
    help="Repeat for several; default: all scopes.",
)
@click.option(
    "--admin",
    is_flag=True,
    default=False,
    help="A deployment-wide admin token: opens the dashboard's overview of every operation"
    " and nothing else (no API); takes no --operation or --scope. Default: off.",
)
@db_option
@friendly
def token_create(
    operation_name: str | None,
    server: str | None,
    description: str,
    scopes: tuple[str, ...],
    admin: bool,
    db: str,
) -> None:
    """Create a token. The secret is printed once, as the last line."""
    ctx = open_context(db)
    if admin:
        if operation_name or server or scopes:
            raise ConfigError("an admin token belongs to no operation: drop --operation/--scope")
        adm, secret = create_admin_token(ctx, description)
        click.echo(f"admin token {adm.id}, scopes: {ADMIN} (the dashboard only)")
        click.echo("the secret below is shown only this once:")
        click.echo(secret)
        return
    if not operation_name:
        raise ConfigError("pass --operation NAME (or --admin for a deployment-wide admin token)")
    op = tenancy.find_operation(ctx, operation_name, server)
    tok, secret = tenancy.create_token(ctx, op, description, list(scopes))
    click.echo(
        f"token {tok.id} for {op.name} (server {op.server}), scopes: {' '.join(sorted(tok.scopes))}"
    )
    click.echo("the secret below is shown only this once:")
    click.echo(secret)


@token.command("list")
@click.option(
    "--operation",
    "operation_name",
    default=None,
    help="Only this operation's tokens (default: all).",
)
@click.option(
    "--server",
    default=None,
    help="The operation's server (4 digits), when its name is used on several servers.",
)
@db_option
@friendly
def token_list(operation_name: str | None, server: str | None, db: str) -> None:
    """List tokens (never their secrets) with today's use."""
    ctx = open_context(db)
    ops = {op.id: op for op in ctx.storage.operations()}
    only = tenancy.find_operation(ctx, operation_name, server).id if operation_name else None
    table = Table(
        "id", "operation", "description", "scopes", "created", "last used", "uses today", "status"
    )
    for tok in ctx.storage.tokens(only):
        op = ops[tok.operation_id]
        day = calendar(op.timezone).today(ctx.clock()).isoformat()
        uses = ctx.storage.request_counts(day, op.id).get(tok.id, 0)
        status = "revoked" if tok.revoked is not None else "active"
        table.add_row(
            tok.id,
            f"{op.server}/{op.name}",
            tok.description,
            " ".join(sorted(tok.scopes)),
            _when(tok.created),
            _when(tok.last_used),
            str(uses),
            status,
        )
    if only is None:
        for adm in ctx.storage.admin_tokens():
            status = "revoked" if adm.revoked is not None else "active"
            table.add_row(
                adm.id,
                "(admin)",
                adm.description,
                ADMIN,
                _when(adm.created),
                _when(adm.last_used),
                "-",
                status,
            )
    console().print(table)


@token.command("revoke")
@click.argument("token_id")
@db_option
@friendly
def token_revoke(token_id: str, db: str) -> None:
    """Revoke TOKEN_ID (irreversible; a running server stops accepting it within a second)."""
    tenancy.revoke_token(open_context(db), token_id)
    click.echo(f"revoked {token_id}")


@click.group()
def month() -> None:
    """Close months."""


@month.command("close")
@click.option("--operation", "operation_name", required=True, help="The operation's name.")
@click.option(
    "--server",
    default=None,
    help="The operation's server (4 digits), when its name is used on several servers.",
)
@click.option("--month", "month_text", required=True, help="The month to close, YYYY-MM.")
@db_option
@friendly
def month_close(operation_name: str, server: str | None, month_text: str, db: str) -> None:
    """Close a month (and every earlier open one), freezing its figures."""
    ctx = open_context(db)
    op = tenancy.find_operation(ctx, operation_name, server)
    try:
        wanted = Month.parse(month_text)
    except MonthError as exc:
        raise ConfigError(str(exc)) from exc
    closed = close_month(ctx, op, wanted)
    if closed:
        click.echo(f"closed {', '.join(map(str, closed))} for {op.name}")
    else:
        click.echo(f"{wanted} was already closed for {op.name}")


@click.command()
@click.argument("state", type=click.Choice(["on", "off"]))
@db_option
@friendly
def maintenance(state: str, db: str) -> None:
    """Switch maintenance mode: API requests get 403 SERVER IN MAINTENANCE while on."""
    set_maintenance(open_context(db), state == "on")
    click.echo(f"maintenance {state} at {datetime.now(UTC):%Y-%m-%d %H:%M:%SZ}")


@click.command()
@db_option
@friendly
def migrate(db: str) -> None:
    """Create or upgrade the database schema."""
    version, ran = bootstrap.migrate(db)
    click.echo(f"schema at version {version} ({ran} migrations applied)")
