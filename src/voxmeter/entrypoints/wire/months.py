"""The `month` query parameter as sent (YYYY-MM), parsed at the edge."""

from __future__ import annotations

from voxmeter.domain.months import Month, MonthError
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import BadParameters
from voxmeter.service.context import Context
from voxmeter.service.figures import past_month


def resolve_month(ctx: Context[object], op: Operation, text: str | None) -> int | None:
    """The month a request asks for: None for the current one; refuses future months."""
    if text is None:
        return None
    try:
        month = Month.parse(text)
    except MonthError as exc:
        raise BadParameters(str(exc)) from exc
    return past_month(ctx, op, month)
