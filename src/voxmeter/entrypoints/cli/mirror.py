"""Mirror options of `operation create|update`, and `voxmeter mirror status`.

The upstream token is read once, from an environment variable or one line of stdin, and never
printed, logged or accepted as a command-line argument (where `ps` would show it).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
from rich.table import Table

from voxmeter.domain.mirrors import (
    DEFAULT_BUDGET_PERCENT,
    DEFAULT_INTERVAL_MINUTES,
    DEFAULT_STALE_MINUTES,
    MICROS_PER_MINUTE,
    MirrorOptions,
)
from voxmeter.domain.tenancy import Operation
from voxmeter.entrypoints.cli.common import (
    db_option,
    format_option,
    friendly,
    open_context,
    settings_for,
)
from voxmeter.errors import ConfigError
from voxmeter.service.context import Context, system_clock
from voxmeter.service.mirrors import create_mirror, find_mirror, statuses, update_mirror
from voxmeter.service.ports import SecretSealing, Storage

F = TypeVar("F", bound=Callable[..., object])


def upstream_options(*, creating: bool) -> Callable[[F], F]:
    """The options that set a mirror's upstream; on update, an option left out keeps its value."""

    def default(value: int) -> int | None:
        return value if creating else None

    def shown(value: int) -> str:
        return f"  [default: {value}]" if creating else "  [default: unchanged]"

    def decorate(func: F) -> F:
        for option in reversed(
            [
                click.option(
                    "--upstream-url",
                    default=None,
                    help="Base URL of the upstream Wolkvox-compatible server."
                    + (
                        "  [default: the hosted https://wv{server}.wolkvox.com]"
                        if creating
                        else "  [default: unchanged]"
                    ),
                ),
                click.option(
                    "--upstream-token-env",
                    metavar="VAR",
                    default=None,
                    help="Environment variable holding the upstream token.  [default: none]",
                ),
                click.option(
                    "--upstream-token-stdin",
                    is_flag=True,
                    help="Read the upstream token from one line of stdin.  [default: off]",
                ),
                click.option(
                    "--interval",
                    type=int,
                    default=default(DEFAULT_INTERVAL_MINUTES),
                    help="Minutes between sweeps at least (5 or more against the hosted service)."
                    + shown(DEFAULT_INTERVAL_MINUTES),
                ),
                click.option(
                    "--budget",
                    type=int,
                    default=default(DEFAULT_BUDGET_PERCENT),
                    help="Percent of the upstream's daily quota the sweeps may spend."
                    + shown(DEFAULT_BUDGET_PERCENT),
                ),
                click.option(
                    "--stale-after",
                    type=int,
                    default=default(DEFAULT_STALE_MINUTES),
                    help="Minutes without a successful sweep before the mirror is stale."
                    + shown(DEFAULT_STALE_MINUTES),
                ),
            ]
        ):
            func = option(func)
        return func

    return decorate


def read_token(env_var: str | None, stdin: bool, *, required: bool) -> str | None:
    """The upstream token from exactly one source; None when none is given and none needed."""
    if env_var and stdin:
        raise ConfigError("give --upstream-token-env or --upstream-token-stdin, not both")
    if env_var:
        value = os.environ.get(env_var, "").strip()
        if not value:
            raise ConfigError(f"environment variable {env_var} is empty or not set")
        return value
    if stdin:
        value = sys.stdin.readline().strip()
        if not value:
            raise ConfigError("no upstream token on stdin")
        return value
    if required:
        raise ConfigError("a mirror needs --upstream-token-env VAR or --upstream-token-stdin")
    return None


def open_sealing(db: str) -> SecretSealing:
    from voxmeter.adapters.secret_box import open_secret_box

    return open_secret_box(db, settings_for(db).secret_key)


def options_given(**values: object) -> bool:
    return any(v not in (None, False) for v in values.values())


def create_from_cli(
    ctx: Context[Storage],
    db: str,
    name: str,
    server: str,
    timezone: str,
    currency: str,
    licenses: int,
    upstream: dict[str, Any],
) -> str:
    """Create a mirror from `operation create --mirror`; the line to print."""
    token = read_token(
        upstream["upstream_token_env"], upstream["upstream_token_stdin"], required=True
    )
    assert token is not None
    options = MirrorOptions(
        upstream_url=upstream["upstream_url"],
        interval_minutes=upstream["interval"],
        budget_percent=upstream["budget"],
        stale_minutes=upstream["stale_after"],
    )
    op = create_mirror(
        ctx, open_sealing(db), name, server, options, token, timezone, currency, licenses
    )
    return (
        f"created mirror {op.name} on server {op.server} ({op.timezone}, billed in "
        f"{op.currency}): {describe(options)}"
    )


def update_from_cli(ctx: Context[Storage], db: str, op: Operation, upstream: dict[str, Any]) -> str:
    """Change a mirror's options from `operation update`; the line to print."""
    token = read_token(
        upstream["upstream_token_env"], upstream["upstream_token_stdin"], required=False
    )
    current = find_mirror(ctx, op)
    old = current.options

    def pick(key: str, before: Any) -> Any:
        return before if upstream[key] is None else upstream[key]

    options = MirrorOptions(
        upstream_url=pick("upstream_url", old.upstream_url),
        interval_minutes=pick("interval", old.interval_minutes),
        budget_percent=pick("budget", old.budget_percent),
        stale_minutes=pick("stale_after", old.stale_minutes),
    )
    update_mirror(ctx, open_sealing(db), op, current, options, token)
    return f"updated mirror {op.name} on server {op.server}: {describe(options)}"


def describe(options: MirrorOptions) -> str:
    where = options.upstream_url or "the hosted service"
    return (
        f"upstream {where}, every {options.interval_minutes} min at least, "
        f"{options.budget_percent} % of its daily quota, stale after {options.stale_minutes} min"
    )


def _when(micros: int | None) -> str:
    if micros is None:
        return "never"
    moment = datetime.fromtimestamp(micros / 1_000_000, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


@click.group()
def mirror() -> None:
    """Mirrors: operations whose figures come from an upstream server."""


@mirror.command("status")
@format_option("table", "json")
@db_option
def status(fmt: str, db: str) -> None:
    """Every mirror's last sync, last error, requests spent today and staleness.

    Exit status 2 when any mirror is stale."""

    @friendly
    def run() -> list[dict[str, object]]:
        ctx = open_context(db)
        now = system_clock()
        rows = []
        for s in statuses(ctx, now):
            state = s.record.state
            rows.append(
                {
                    "operation": s.operation.name,
                    "server": s.operation.server,
                    "upstream": s.record.options.upstream_url or "hosted",
                    "last_sync": _when(state.last_ok),
                    "last_attempt": _when(state.last_attempt),
                    "next_sweep": _when(state.next_due) if state.next_due else "now",
                    "last_error": state.last_error or "",
                    "requests_today": s.requests_today,
                    "budget": s.budget,
                    "stale": s.stale,
                    "stale_after_minutes": s.stale_after // MICROS_PER_MINUTE,
                }
            )
        return rows

    rows = run()
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    else:
        from voxmeter.entrypoints.cli.admin import console

        table = Table(
            "server",
            "operation",
            "upstream",
            "last sync",
            "next sweep",
            "requests today",
            "stale",
            "last error",
        )
        for r in rows:
            table.add_row(
                str(r["server"]),
                str(r["operation"]),
                str(r["upstream"]),
                str(r["last_sync"]),
                str(r["next_sweep"]),
                f"{r['requests_today']}/{r['budget']}",
                "STALE" if r["stale"] else "no",
                str(r["last_error"]),
            )
        console().print(table)
    if any(r["stale"] for r in rows):
        raise SystemExit(2)
