"""The `voxmeter` command group."""

from __future__ import annotations

import click

from voxmeter import __version__
from voxmeter.entrypoints.cli import admin
from voxmeter.entrypoints.cli.audit import audit_command
from voxmeter.entrypoints.cli.daily import daily
from voxmeter.entrypoints.cli.ingest import ingest
from voxmeter.entrypoints.cli.prices import price
from voxmeter.entrypoints.cli.serve import demo, serve
from voxmeter.entrypoints.cli.statement import statement
from voxmeter.entrypoints.cli.usage import usage
from voxmeter.entrypoints.cli.watch import history_command, watch


@click.group()
@click.version_option(__version__, prog_name="voxmeter")
def cli() -> None:
    """voxmeter: usage metering and Wolkvox-compatible billing reports."""


cli.add_command(serve)
cli.add_command(demo)
cli.add_command(admin.operation)
cli.add_command(admin.token)
cli.add_command(admin.month)
cli.add_command(admin.maintenance)
cli.add_command(admin.migrate)
cli.add_command(price)
cli.add_command(statement)
cli.add_command(ingest)
cli.add_command(daily)
cli.add_command(usage)
cli.add_command(watch)
cli.add_command(history_command)
cli.add_command(audit_command)


def main() -> None:
    cli(prog_name="voxmeter")
