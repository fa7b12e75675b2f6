"""Rows of either database as domain objects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from voxmeter.domain.meters import MeterState
from voxmeter.domain.tenancy import Operation, Token

OPERATION_COLUMNS = "id, name, server, timezone, licenses, created, currency, mirror"
TOKEN_COLUMNS = "id, operation_id, description, scopes, created, revoked, last_used"  # noqa: S105


def operation(row: Sequence[Any]) -> Operation:
    return Operation(
        id=int(row[0]),
        name=str(row[1]),
        server=str(row[2]),
        timezone=str(row[3]),
        licenses=int(row[4]),
        created=int(row[5]),
        currency=str(row[6]),
        mirror=bool(row[7]),
    )


def token(row: Sequence[Any]) -> Token:
    return Token(
        id=str(row[0]),
        operation_id=int(row[1]),
        description=str(row[2]),
        scopes=frozenset(str(row[3]).split()),
        created=int(row[4]),
        revoked=None if row[5] is None else int(row[5]),
        last_used=None if row[6] is None else int(row[6]),
    )


def meter_state(total: Any, last_time: Any, last_value: Any) -> MeterState:
    """Totals are kept as text or numeric (they may outgrow 64 bits): always an exact int."""
    return MeterState(int(total), None if last_time is None else int(last_time), int(last_value))
