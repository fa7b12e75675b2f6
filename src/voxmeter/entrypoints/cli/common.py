"""Shared CLI plumbing: the --db option, opening the context, and one-line errors."""

from __future__ import annotations

import functools
import getpass
import os
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import ParamSpec, TypeVar

import click

from voxmeter import bootstrap
from voxmeter.adapters.sqlite.schema import SchemaError
from voxmeter.config import DEFAULT_DATABASE_URL, Settings
from voxmeter.domain.audit import cli_actor
from voxmeter.entrypoints.wire.errors import message
from voxmeter.errors import ConfigError, VoxmeterError
from voxmeter.service.context import Context
from voxmeter.service.ports import Storage

P = ParamSpec("P")
R = TypeVar("R")


def default_db() -> str:
    return os.environ.get("VOXMETER_DATABASE_URL", DEFAULT_DATABASE_URL)


db_option = click.option(
    "--db",
    "db",
    default=default_db,
    show_default="$VOXMETER_DATABASE_URL, else sqlite:///./voxmeter.db",
    help="Database URL: sqlite:///path/to/file.db or postgresql://user@host/dbname.",
)


def format_option(
    *choices: str, help: str = "Output format."
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """`--format` (as `fmt`) among `choices`, the first being the default."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(list(choices)),
        default=choices[0],
        show_default=True,
        help=help,
    )


def settings_for(db: str) -> Settings:
    return replace(Settings.from_env(), database_url=db)


def open_context(db: str) -> Context[Storage]:
    """The context of an existing database (see `require_existing`), acting as the OS user
    who runs the command (what the audit log records)."""
    require_existing(db)
    return replace(bootstrap.context(settings_for(db)), actor=os_actor())


def os_actor() -> str:
    """`cli:<OS user>`, the audit log's actor for changes made with the command."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor the password database
        user = ""
    return cli_actor(user)


def require_existing(db: str) -> None:
    """Refuse a SQLite URL whose file does not exist. Only `serve`, `demo` and `migrate` create a
    database: any other command run in the wrong directory would otherwise create an empty
    `./voxmeter.db` and report a misleading "no operation named ..."."""
    if not db.startswith(bootstrap.SQLITE):
        return
    path = db[len(bootstrap.SQLITE) :]
    if path == ":memory:" or Path(path).exists():
        return
    raise ConfigError(
        f"no database at {Path(path).absolute()}: pass --db (or set VOXMETER_DATABASE_URL) to "
        f"an existing database, or create this one with `voxmeter migrate --db {db}`"
    )


def counted(n: int, noun: str) -> str:
    """`1 event`, `2 events`: a count with its noun in the right number."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _line(item: object) -> str:
    if isinstance(item, dict) and {"index", "field", "error"} <= item.keys():
        return f"event {item['index']}: {item['field']}: {item['error']}"
    return str(item)


def friendly(func: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into `error: ...` on stderr and exit status 1, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except VoxmeterError as exc:
            detail = "".join(f"\n  {_line(item)}" for item in exc.data[:20])
            more = f"\n  ... and {len(exc.data) - 20} more" if len(exc.data) > 20 else ""
            raise click.ClickException(f"{message(exc)}{detail}{more}") from exc
        except (SchemaError, ValueError, OSError, sqlite3.Error) as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper
