"""Refusing a schema other than the one this release uses, and reading the deployment id."""

from __future__ import annotations

from collections.abc import Sequence

from voxmeter.errors import SchemaError


def check(found: int, latest: int) -> None:
    """Refuse a schema other than `latest`, saying which way to fix it."""
    if found > latest:
        raise SchemaError(newer(found, latest))
    if found != latest:
        raise SchemaError(
            f"database schema version {found}, this voxmeter needs {latest}: run 'voxmeter migrate'"
        )


def newer(found: int, latest: int) -> str:
    return (
        f"database schema version {found} is newer than this voxmeter knows ({latest}); "
        "upgrade voxmeter"
    )


def stored_deployment(row: Sequence[object] | None) -> str:
    """The id from its one row, refusing a table emptied or altered by hand."""
    found = str(row[0]) if row is not None else ""
    if not found.isalnum():
        raise SchemaError(
            "the database's deployment id (table 'deployment', one row of letters and digits) "
            "is missing or invalid: the limits shared through Redis are keyed by it"
        )
    return found
