"""Every reply body as a msgspec Struct: the one definition both the encoder and /openapi.json use.

Field order is the wire's key order (`code`, `error`, `msg`, `data`, then any extra key), which
hosted-API clients compare exactly, so a field is only ever appended.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from voxmeter.service import audit
from voxmeter.service.events import MAX_PAGE

DECIMAL = r"^(0|[1-9][0-9]*)(\.[0-9]*[1-9])?$"
"""A figure or stored quantity as voxmeter writes it: plain decimal, no exponent, no trailing
zeros (`0`, `12`, `12.5`)."""
DATE = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
COUNT = r"^(0|[1-9][0-9]*)$"
OPTIONAL_DECIMAL = r"^((0|[1-9][0-9]*)(\.[0-9]*[1-9])?)?$"
UPTO = r"^(inf|(0|[1-9][0-9]*)(\.[0-9]*[1-9])?)$"
MONTH = r"^[0-9]{4}-(0[1-9]|1[0-2])$"

Decimal = Annotated[
    str, msgspec.Meta(pattern=DECIMAL, description="Plain decimal, no exponent, no trailing zeros")
]
Count = Annotated[str, msgspec.Meta(pattern=COUNT)]
Code = Annotated[int, msgspec.Meta(description="Always equal to the HTTP status.")]


class UsageRow(msgspec.Struct):
    """One product's figure for the month (billing.php)."""

    operation: str
    description: str
    items: Decimal
    date: Annotated[
        str, msgspec.Meta(pattern=DATE, description="YYYY-MM-DD in the operation timezone")
    ]


class DayRow(msgspec.Struct):
    """One local day's figure of the product asked for (daily)."""

    date: Annotated[
        str, msgspec.Meta(pattern=DATE, description="YYYY-MM-DD, a day in the operation timezone")
    ]
    items: Decimal


class ProductDayRow(msgspec.Struct):
    """One local day's figure of one product (daily with api=all)."""

    api: str
    date: Annotated[
        str, msgspec.Meta(pattern=DATE, description="YYYY-MM-DD, a day in the operation timezone")
    ]
    items: Decimal


class TokenInfo(msgspec.Struct):
    """The token's and its operation's quota use today (information.php)."""

    description: str
    token_limit: Count
    token_use_today: Count
    all_token_today: Count
    available_consumption_options: Count


class ForecastRow(msgspec.Struct):
    """One product's figure so far and its expected figure at the month's end."""

    api: str
    description: str
    unit: str
    items: Decimal
    forecast: Decimal


class TierOut(msgspec.Struct):
    """One tier of a tiered price on a statement line."""

    upto: Annotated[
        str, msgspec.Meta(pattern=UPTO, description="Cumulative billable units, or inf")
    ]
    unit_price: Decimal
    units: Decimal
    amount: Decimal


class StatementLine(msgspec.Struct):
    """One catalog product's usage and amount for the month."""

    api: str
    description: str
    unit: str
    items: Decimal
    included: Decimal
    billable: Decimal
    unit_price: Annotated[
        str,
        msgspec.Meta(
            pattern=OPTIONAL_DECIMAL,
            description="A flat price per unit; empty for tiered prices and unpriced products",
        ),
    ]
    tiers: list[TierOut]
    amount: Decimal


class StatementData(msgspec.Struct):
    """A month's statement in the operation's currency."""

    operation: str
    server: str
    month: Annotated[str, msgspec.Meta(pattern=MONTH)]
    status: Literal["draft", "final"]
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]
    lines: Annotated[list[StatementLine], msgspec.Meta(min_length=1)]
    total: Decimal
    forecast_total: Decimal


class IngestResult(msgspec.Struct):
    accepted: Annotated[int, msgspec.Meta(ge=0)]
    duplicates: Annotated[int, msgspec.Meta(ge=0)]


class EventOut(msgspec.Struct):
    """A stored event as listed for reconciliation."""

    id: str
    product: str
    time: Annotated[
        str,
        msgspec.Meta(
            extra_json_schema={"format": "date-time"}, description="In the operation timezone"
        ),
    ]
    quantity: Annotated[str, msgspec.Meta(pattern=DECIMAL)]
    subject: str | None
    voided: bool


class AuditOut(msgspec.Struct):
    """One audit log entry: who changed what, when."""

    time: Annotated[
        str,
        msgspec.Meta(
            extra_json_schema={"format": "date-time"}, description="In the operation timezone"
        ),
    ]
    actor: Annotated[
        str,
        msgspec.Meta(
            description="A token id (tok_...), cli:<OS user> for the voxmeter command, or "
            "system for what the server does by itself"
        ),
    ]
    action: Annotated[str, msgspec.Meta(description="What was done, e.g. token.create")]
    details: Annotated[
        dict[str, Any], msgspec.Meta(description="What changed; never a secret or token hash")
    ]


class AttemptOut(msgspec.Struct):
    """One POST of a delivery."""

    time: Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"})]
    status: Annotated[int | None, msgspec.Meta(description="The receiver's HTTP status")]
    error: Annotated[str | None, msgspec.Meta(description="What went wrong, if anything")]
    duration_ms: Annotated[int, msgspec.Meta(ge=0)]


class DeliveryOut(msgspec.Struct):
    """One firing's delivery: pending (retried with backoff), delivered or failed."""

    id: int
    month: Annotated[str, msgspec.Meta(pattern=MONTH)]
    state: Literal["pending", "delivered", "failed"]
    attempts: Annotated[int, msgspec.Meta(ge=0)]
    created: Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"})]
    last_attempt: AttemptOut | None


class AlertOut(msgspec.Struct):
    """An alert and its last deliveries; never its secret, and of its webhook only the
    origin (the path of an incoming-webhook URL is a credential)."""

    id: int
    product: Annotated[
        str | None,
        msgspec.Meta(description="null: the statement total, or a staleness alert's mirror"),
    ]
    on: Literal["figure", "forecast", "amount", "stale"]
    threshold: Annotated[Decimal | None, msgspec.Meta(description="null: a staleness alert")]
    webhook: Annotated[str, msgspec.Meta(description="scheme://host[:port] of the receiver")]
    payload: Literal["json", "slack"]
    created: Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"})]
    deliveries: Annotated[list[DeliveryOut], msgspec.Meta(description="Newest first")]


class Voided(msgspec.Struct):
    id: str
    product: str
    voided: Literal[True] = True


class Problem(msgspec.Struct):
    """One reason a batch was refused."""

    index: Annotated[int, msgspec.Meta(ge=0)]
    field: str
    error: str


class Error(msgspec.Struct):
    """Every refusal: `code` equals the HTTP status."""

    code: Code
    error: str
    msg: str
    data: Annotated[
        list[Problem],
        msgspec.Meta(description="[] except on invalid ingest: every problem found"),
    ]


class _Ok(msgspec.Struct, kw_only=True):
    """A success: `code` 200, `error` null."""

    code: Annotated[Literal[200], msgspec.Meta(description="Always equal to the HTTP status.")] = (
        200
    )
    error: None = None
    msg: str


class Figures(_Ok, kw_only=True):
    data: Annotated[list[UsageRow], msgspec.Meta(min_length=1)]


class DailyFigures(_Ok, kw_only=True):
    data: Annotated[list[DayRow], msgspec.Meta(min_length=1, max_length=31)]


class DailyAllFigures(_Ok, kw_only=True):
    data: Annotated[list[ProductDayRow], msgspec.Meta(min_length=1)]


class TokenInformation(_Ok, kw_only=True):
    data: Annotated[list[TokenInfo], msgspec.Meta(min_length=1, max_length=1)]


class Forecasts(_Ok, kw_only=True):
    data: Annotated[list[ForecastRow], msgspec.Meta(min_length=1)]


class StatementReply(_Ok, kw_only=True):
    data: StatementData


class Ingested(_Ok, kw_only=True):
    data: IngestResult


class EventPage(_Ok, kw_only=True):
    data: Annotated[list[EventOut], msgspec.Meta(max_length=MAX_PAGE)]
    next_cursor: Annotated[str | None, msgspec.Meta(description="null on the last page")]


class AuditPage(_Ok, kw_only=True):
    data: Annotated[list[AuditOut], msgspec.Meta(max_length=audit.MAX_PAGE)]
    next_cursor: Annotated[str | None, msgspec.Meta(description="null on the last page")]


class AlertList(_Ok, kw_only=True):
    data: list[AlertOut]


class VoidResult(_Ok, kw_only=True):
    data: Annotated[list[Voided], msgspec.Meta(min_length=1, max_length=1)]


class Health(msgspec.Struct):
    status: Literal["ok"] = "ok"


ENVELOPES = (
    Figures,
    DailyFigures,
    DailyAllFigures,
    TokenInformation,
    Forecasts,
    StatementReply,
    Ingested,
    EventPage,
    VoidResult,
    AuditPage,
    AlertList,
    Health,
)
"""Each endpoint's whole success reply."""
REPLIES = (*ENVELOPES, Error)
"""The types /openapi.json describes, with every type they contain."""

encode = msgspec.json.Encoder().encode
"""One cached encoder for every reply."""
