"""The API's endpoints as plain values: what to send and how to read the answer.

Both clients run the same `Call` objects, so the sync and async classes differ only in how they
wait (the sans-I/O style of httpx and h11): nothing about paths, parameters or parsing is
written twice.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import islice
from typing import Generic, TypeVar

import httpx

from voxmeter.client._errors import ResponseFormatError, error_class
from voxmeter.client._models import (
    SUCCESS_CODES,
    Envelope,
    TokenInfo,
    UsageRow,
    blank,
    decode_json,
    ingest_counts,
    parse_envelope,
    token_info,
    usage_row,
)
from voxmeter.client._retry import parse_retry_after
from voxmeter.domain.catalog import Catalog

T = TypeVar("T")

BILLING = "/api/v2/billing.php"
INFORMATION = "/api/v2/information.php"
EVENTS = "/api/v2/events"
MAX_EVENTS_PER_CALL = 10_000
"""The hosted limit of records uploaded per call."""

Month = str | dt.date


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request and the parser of its success envelope."""

    method: str
    path: str
    parse: Callable[[Envelope], T]
    params: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def month_param(month: Month | None) -> dict[str, str]:
    if month is None:
        return {}
    if isinstance(month, dt.date):
        return {"month": f"{month.year:04d}-{month.month:02d}"}
    return {"month": month}


def usage(api: str, month: Month | None, catalog: Catalog) -> Call[list[UsageRow]]:
    product = catalog.get(api)
    unit = product.unit if product else None
    return Call(
        "GET",
        BILLING,
        lambda env: [usage_row(row, api, unit) for row in env.data],
        {"api": api} | month_param(month),
    )


def usage_all(month: Month | None, catalog: Catalog) -> Call[list[UsageRow]]:
    return Call(
        "GET", BILLING, lambda env: all_rows(env, catalog), {"api": "all"} | month_param(month)
    )


def all_rows(env: Envelope, catalog: Catalog) -> list[UsageRow]:
    """Name each `api=all` row's product by its title, or by catalog order when counts agree."""
    products = list(catalog)
    by_title = {p.title.casefold(): p for p in products}
    rows: list[UsageRow] = []
    for index, raw in enumerate(env.data):
        title = raw.get("description") if isinstance(raw, dict) else None
        product = None if blank(title) else by_title.get(str(title).strip().casefold())
        if product is None and len(env.data) == len(products):
            product = products[index]
        if product is None:
            raise ResponseFormatError(f"api=all row {index} matches no catalog product", raw)
        rows.append(usage_row(raw, product.api, product.unit))
    return rows


def token_info_call() -> Call[TokenInfo]:
    return Call("GET", INFORMATION, token_info, {"api": "token_info"})


def events(batch: list[Mapping[str, object]]) -> Call[tuple[int, int, Envelope]]:
    body = json.dumps(batch, default=_json_value, separators=(",", ":")).encode()
    return Call(
        "POST",
        EVENTS,
        lambda env: (*ingest_counts(env), env),
        content=body,
        headers={"Content-Type": "application/json"},
    )


def batches(
    items: Iterable[Mapping[str, object]], size: int = MAX_EVENTS_PER_CALL
) -> Iterator[list[Mapping[str, object]]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _json_value(value: object) -> object:
    """Decimals go out as exact plain strings; dates and times as ISO 8601."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot send a {type(value).__name__} in an event")


def envelope_of(response: httpx.Response) -> Envelope:
    """The success envelope of a response, or the classified error it carries.

    An error is an HTTP status of 400 or more, or (hosted quirk) a 200 whose body `code` is
    neither 200 nor 0. A non-JSON error page (a proxy's 502) is still classified by status.
    """
    status = response.status_code
    envelope: Envelope | None = None
    try:
        envelope = parse_envelope(decode_json(response.content))
    except (ValueError, ResponseFormatError) as exc:
        if status < 400:
            raise ResponseFormatError(
                f"HTTP {status} answer is not a Wolkvox envelope ({exc})", response.text[:2000]
            ) from exc
    code = envelope.code if envelope else None
    if status < 400 and (code is None or code in SUCCESS_CODES):
        assert envelope is not None
        return envelope
    effective = status if status >= 400 or code is None else code
    msg = envelope.msg if envelope else response.reason_phrase
    raise error_class(effective, msg)(
        msg,
        status=effective,
        code=code,
        error=envelope.error if envelope else None,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        raw=envelope.raw if envelope else response.text[:2000],
    )
