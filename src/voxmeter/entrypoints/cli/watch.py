"""`voxmeter watch` and `voxmeter history`: keep the mirrors of a TOML file and run their due
sweeps without a server (cron), and show a mirror's readings. Everything is in the one
database (`--db`); tokens are never printed or logged."""

from __future__ import annotations

import io
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from voxmeter import bootstrap
from voxmeter.domain.months import Month, MonthError, calendar
from voxmeter.domain.quantities import format_micro
from voxmeter.entrypoints.cli.common import (
    db_option,
    friendly,
    open_context,
    os_actor,
    settings_for,
)
from voxmeter.entrypoints.cli.mirror import open_sealing
from voxmeter.entrypoints.http.sweeper import owner_id
from voxmeter.errors import ConfigError
from voxmeter.service.alerts import check_stale_alerts
from voxmeter.service.mirrors import find_mirror, statuses
from voxmeter.service.tenancy import find_operation
from voxmeter.watch import config as watch_config
from voxmeter.watch.legacy import import_history
from voxmeter.watch.run import apply_config, sweep_due

log = logging.getLogger("voxmeter.watch")

EXIT_STALE = 2
PAUSE_SECONDS = 30


@click.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML file of [[operation]] entries (docs/mirrors.md).",
)
@click.option("--once", is_flag=True, help="One pass of the due sweeps, then exit (for cron).")
@db_option
@friendly
def watch(config_path: Path, once: bool, db: str) -> None:
    """Create or update the mirrors listed in the config, then run the sweeps that are due.

    Each pass also fires the staleness alerts (--on stale) of mirrors gone stale; their
    deliveries are sent by a running `voxmeter serve` on the same database.

    With --once: exit 0, or 2 with one warning line per stale mirror on stderr. Without it,
    sweep as they come due until interrupted."""
    try:
        cfg = watch_config.load(config_path)
    except watch_config.ConfigError as exc:
        raise ConfigError(str(exc)) from exc
    ctx = replace(
        bootstrap.context(settings_for(db)), actor=os_actor()
    )  # a cron's first run creates the database
    sealing = open_sealing(db)
    operations = apply_config(ctx, sealing, cfg)
    owner = owner_id()
    if not once:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    while True:
        for report in sweep_due(ctx, sealing, operations, owner):
            if report.result == "failed" and report.state is not None:
                line = f"operation {report.operation.name}: {report.state.last_error}"
                click.echo(f"error: {line}", err=True) if once else log.warning("%s", line)
        for alert_id, name in check_stale_alerts(ctx):
            line = f"operation {name} is stale: alert {alert_id} fired"
            click.echo(f"warning: {line}", err=True) if once else log.warning("%s", line)
        wanted = {op.id for op in operations}
        stale = [s for s in statuses(ctx, ctx.clock()) if s.stale and s.operation.id in wanted]
        for s in stale:
            since = s.record.state.last_ok
            when = "never swept successfully" if since is None else f"last sync {_when(since)}"
            line = f"warning: operation {s.operation.name} is stale: {when}"
            click.echo(line, err=True) if once else log.warning("%s", line)
        if once:
            if stale:
                raise SystemExit(EXIT_STALE)
            return
        time.sleep(PAUSE_SECONDS)  # pragma: no cover (the loop is --once repeated)


def _when(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1_000_000, UTC).strftime("%Y-%m-%d %H:%M UTC")


@click.command("history")
@click.option("--operation", "name", required=True, help="The mirror's operation name.")
@click.option("--server", default=None, help="The operation's server, when its name is on several.")
@click.option("--month", default=None, help="YYYY-MM.  [default: the current month]")
@click.option(
    "--import",
    "import_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Import the snapshots of this operation from an older separate history file "
    "(voxmeter-history.db) first.  [default: none]",
)
@db_option
@friendly
def history_command(
    name: str, server: str | None, month: str | None, import_path: Path | None, db: str
) -> None:
    """Each product's readings in a month: first and last figure, and the month-end."""
    ctx = open_context(db)
    op = find_operation(ctx, name, server)
    record = find_mirror(ctx, op)
    if import_path is not None:
        added = import_history(ctx, op, import_path)
        click.echo(f"imported {added} readings from {import_path}")
    try:
        index = (
            Month.parse(month).index if month else calendar(op.timezone).current_month(ctx.clock())
        )
    except MonthError as exc:
        raise ConfigError(str(exc)) from exc
    readings = ctx.storage.readings(op.id, index, index)
    if not readings:
        raise ConfigError(f"no readings of operation {name!r} in {Month.from_index(index)}")
    frozen = record.state.frozen_through is not None and index <= record.state.frozen_through
    table = Table(
        "api",
        "first",
        "last",
        "change",
        "readings",
        "last seen",
        "month-end",
        title=f"{name} {Month.from_index(index)}",
    )
    by_api: dict[str, list[tuple[int, int]]] = {}
    for r in readings:
        by_api.setdefault(r.product, []).append((r.figure, r.last_seen))
    for p in ctx.catalog:
        seen = by_api.get(p.api)
        if not seen:
            continue
        first, last = seen[0][0], seen[-1][0]
        table.add_row(
            p.api,
            format_micro(first),
            format_micro(last),
            format_micro(last - first),
            str(len(seen)),
            _when(max(s[1] for s in seen)),
            format_micro(last) if frozen else "",
        )
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(table)
    click.echo(console.export_text().rstrip("\n"))
