"""`voxmeter watch` and `voxmeter history`: scheduled polling into a local SQLite history and
each product's trend from it. Tokens are never printed or logged."""

from __future__ import annotations

import io
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from voxmeter.domain.months import Month, MonthError
from voxmeter.domain.quantities import format_decimal
from voxmeter.watch import config as watch_config
from voxmeter.watch.history import History, HistoryError
from voxmeter.watch.poll import now_micros, poll_cycle, stale_operations

log = logging.getLogger("voxmeter.watch")

DEFAULT_HISTORY = "voxmeter-history.db"
EXIT_STALE = 2
_history_option = click.option(
    "--history",
    "history_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_HISTORY,
    show_default=True,
    help="SQLite file of polled snapshots.",
)


@click.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML file of [[operation]] entries.",
)
@_history_option
@click.option("--once", is_flag=True, help="One poll cycle, then exit (for cron).")
@click.option(
    "--stale-after",
    type=click.IntRange(min=0),
    default=30,
    show_default=True,
    help="Minutes without a successful poll before an operation is stale (exit code 2).",
)
def watch(config_path: Path, history_path: Path, once: bool, stale_after: int) -> None:
    """Poll each configured operation into the history, at most every interval_minutes.

    With --once: exit 0, or 2 with one warning line per stale operation on stderr.
    """
    try:
        cfg = watch_config.load(config_path)
    except watch_config.ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if not once:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        history = History(history_path)
    except HistoryError as exc:
        raise click.ClickException(str(exc)) from exc
    with history:
        if once:
            # Warnings go to stderr below, once per operation; keep the log quiet.
            log.setLevel(logging.CRITICAL)
            results = poll_cycle(history, cfg.operations)
            stale = stale_operations(history, cfg.operations, now_micros(), stale_after)
            stale_names = {name for name, _ in stale}
            for result in results:
                if result.status == "error" and result.operation not in stale_names:
                    click.echo(f"error: operation {result.operation}: {result.error}", err=True)
            for _, line in stale:
                click.echo(line, err=True)
            if stale:
                raise SystemExit(EXIT_STALE)
            return
        pause = max(60, min(op.interval_minutes for op in cfg.operations) * 60)
        while True:  # pragma: no cover (exercised by hand; --once is the tested path)
            poll_cycle(history, cfg.operations)
            for _, line in stale_operations(history, cfg.operations, now_micros(), stale_after):
                log.warning("%s", line)
            time.sleep(pause)


def _when(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1_000_000, UTC).strftime("%Y-%m-%d %H:%M UTC")


@click.command("history")
@click.option("--operation", required=True, help="The operation's name in the watch config.")
@click.option("--month", default=None, help="YYYY-MM; default: the latest month in the history.")
@_history_option
def history_command(operation: str, month: str | None, history_path: Path) -> None:
    """Each product's trend in a month: first and last polled figure, and the month-end."""
    if month is not None:
        try:
            month = str(Month.parse(month))
        except MonthError as exc:
            raise click.ClickException(str(exc)) from exc
    try:
        store = History(history_path, create=False)
    except HistoryError as exc:
        raise click.ClickException(str(exc)) from exc
    with store:
        months = store.months(operation)
        if not months:
            raise click.ClickException(f"no snapshots of operation {operation!r} in {history_path}")
        month = month or months[-1]
        trends = store.trends(operation, month)
    if not trends:
        raise click.ClickException(f"no snapshots of operation {operation!r} in {month}")
    table = Table(
        "api",
        "first",
        "last",
        "change",
        "snapshots",
        "last polled",
        "month-end",
        title=f"{operation} {month}",
    )
    for t in trends:
        table.add_row(
            t.api,
            format_decimal(t.first),
            format_decimal(t.last),
            format_decimal(t.last - t.first),
            str(t.snapshots),
            _when(t.last_seen),
            format_decimal(t.month_end) if t.month_end is not None else "",
        )
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(table)
    click.echo(console.export_text().rstrip("\n"))
