"""The `voxmeter` command group."""

from __future__ import annotations

import click

from voxmeter import __version__
from voxmeter.entrypoints.cli.lazy import LazyGroup

_CLI = "voxmeter.entrypoints.cli"
COMMANDS = {
    "serve": f"{_CLI}.serve:serve",
    "demo": f"{_CLI}.serve:demo",
    "operation": f"{_CLI}.admin:operation",
    "token": f"{_CLI}.admin:token",
    "month": f"{_CLI}.admin:month",
    "maintenance": f"{_CLI}.admin:maintenance",
    "migrate": f"{_CLI}.admin:migrate",
    "price": f"{_CLI}.prices:price",
    "statement": f"{_CLI}.statement:statement",
    "ingest": f"{_CLI}.ingest:ingest",
    "daily": f"{_CLI}.daily:daily",
    "usage": f"{_CLI}.usage:usage",
    "watch": f"{_CLI}.watch:watch",
    "history": f"{_CLI}.watch:history_command",
    "audit": f"{_CLI}.audit:audit_command",
    "alert": f"{_CLI}.alerts:alert",
    "mirror": f"{_CLI}.mirror:mirror",
}
"""Each command and where it lives: its module is imported only when it runs."""


@click.group(cls=LazyGroup, lazy=COMMANDS)
@click.version_option(__version__, prog_name="voxmeter")
def cli() -> None:
    """voxmeter: usage metering and Wolkvox-compatible billing reports."""


def main() -> None:
    cli(prog_name="voxmeter")
