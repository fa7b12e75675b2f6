"""Tolerant parsing of hosted-shape billing responses (client).

The corpus below is the shapes seen from Wolkvox-compatible servers: integer and string codes,
"0" success codes, blank strings for missing values, figures with spaces, JSON numbers.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import httpx
import pytest

from voxmeter.client import (
    APIStatusError,
    BadParametersError,
    InvalidTokenError,
    MaintenanceError,
    MissingTokenError,
    PayloadTooLargeError,
    QuotaExceededError,
    ResponseFormatError,
    ServerError,
    TooManyRequestsError,
    UnknownApiError,
    _calls,
)
from voxmeter.domain.catalog import Catalog

CATALOG = Catalog.load()


def reply(body: object, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.Response(status, content=content, headers=headers)


def rows_of(body: object, api: str = "ivr_minutes") -> list[tuple[object, ...]]:
    envelope = _calls.envelope_of(reply(body))
    parsed = _calls.usage(api, None, CATALOG).parse(envelope)
    return [(r.api, r.operation, r.description, r.items, r.date, r.unit) for r in parsed]


def billing(code: object, items: object, date: object = "2026-11-22", **extra: object) -> dict:  # type: ignore[type-arg]
    row = {"operation": "acme", "description": "IVR minutes", "items": items, "date": date}
    return {"code": code, "error": None, "msg": "Information found", "data": [row]} | extra


# --- success shapes ------------------------------------------------------------------------


@pytest.mark.parametrize("code", [200, "200", " 200 ", "0", 0])
def test_every_success_code_shape_is_accepted(code: object) -> None:
    assert rows_of(billing(code, "1234")) == [
        ("ivr_minutes", "acme", "IVR minutes", Decimal("1234"), dt.date(2026, 11, 22), "minutes")
    ]


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ("0", Decimal("0")),
        ("12.5", Decimal("12.5")),
        (" 12.5 ", Decimal("12.5")),
        ("1 234", Decimal("1234")),
        ("1\u00a0234.75", Decimal("1234.75")),
        ("0.1", Decimal("0.1")),
        (7, Decimal("7")),
        ("", Decimal("0")),
        (" ", Decimal("0")),
        (None, Decimal("0")),
    ],
)
def test_items_are_exact_decimals_whatever_the_spelling(items: object, expected: Decimal) -> None:
    [row] = rows_of(billing(200, items))
    assert row[3] == expected
    assert type(row[3]) is Decimal


def test_json_float_items_never_pass_through_float() -> None:
    """0.1 + 0.2 as floats would be 0.30000000000000004; as Decimals it is exact."""
    body = b'{"code":200,"error":null,"msg":"ok","data":[{"items":0.1},{"items":0.2}]}'
    parsed = _calls.usage("rsync", None, CATALOG).parse(_calls.envelope_of(reply(body)))
    assert [type(r.items) for r in parsed] == [Decimal, Decimal]
    assert parsed[0].items + parsed[1].items == Decimal("0.3")
    product = CATALOG.get("rsync")
    assert product is not None
    assert parsed[0].unit == product.unit


@pytest.mark.parametrize("date", ["", " ", None])
def test_blank_dates_and_texts_are_missing(date: object) -> None:
    body = billing(200, "3", date)
    body["data"][0]["operation"] = " "
    body["data"][0]["description"] = ""
    [row] = rows_of(body)
    assert row[1:5] == (None, None, Decimal("3"), None)


def test_a_date_with_a_time_keeps_the_day() -> None:
    [row] = rows_of(billing("200", "1", "2026-11-01 00:05:00"))
    assert row[4] == dt.date(2026, 11, 1)


def test_raw_json_is_kept_on_each_row_and_hidden_from_repr() -> None:
    envelope = _calls.envelope_of(reply(billing(200, "5", extra_field="x")))
    [row] = _calls.usage("ivr_minutes", None, CATALOG).parse(envelope)
    assert row.raw == {
        "operation": "acme",
        "description": "IVR minutes",
        "items": "5",
        "date": "2026-11-22",
    }
    assert envelope.raw["extra_field"] == "x"
    assert "raw" not in repr(row)


def test_data_as_single_object_or_null() -> None:
    single = {"code": 200, "msg": "ok", "data": {"items": "2", "date": "2026-01-31"}}
    assert rows_of(single)[0][3:5] == (Decimal("2"), dt.date(2026, 1, 31))
    assert rows_of({"code": "200", "msg": "ok", "data": None}) == []
    assert rows_of({"code": "0", "msg": "ok", "data": " "}) == []


def test_unknown_product_has_no_unit() -> None:
    [row] = rows_of(billing(200, "1"), api="not_in_catalog")
    assert row[0] == "not_in_catalog"
    assert row[5] is None


def test_api_all_rows_are_named_by_title_then_order() -> None:
    products = list(CATALOG)
    data = [
        {"operation": "a", "description": p.title, "items": str(i)} for i, p in enumerate(products)
    ]
    parsed = _calls.usage_all(None, CATALOG).parse(
        _calls.envelope_of(reply({"code": 200, "data": data}))
    )
    assert [(r.api, r.unit, r.items) for r in parsed] == [
        (p.api, p.unit, Decimal(i)) for i, p in enumerate(products)
    ]
    # Untitled rows fall back to catalog order when every product is there ...
    untitled = [{"items": "1"} for _ in products]
    parsed = _calls.usage_all(None, CATALOG).parse(
        _calls.envelope_of(reply({"code": 200, "data": untitled}))
    )
    assert [r.api for r in parsed] == [p.api for p in products]
    # ... and are an error otherwise (never a guessed product).
    with pytest.raises(ResponseFormatError, match="matches no catalog product"):
        _calls.usage_all(None, CATALOG).parse(
            _calls.envelope_of(
                reply({"code": 200, "data": [{"description": "Mystery", "items": "1"}]})
            )
        )


def test_token_info_fields_tolerate_strings_spaces_and_blanks() -> None:
    body = {
        "code": "200",
        "error": "",
        "msg": "ok",
        "data": [
            {
                "description": "reporting",
                "token_limit": "1 000",
                "token_use_today": 3,
                "all_token_today": " 7 ",
                "available_consumption_options": "",
            }
        ],
    }
    info = _calls.token_info_call().parse(_calls.envelope_of(reply(body)))
    assert (info.description, info.token_limit, info.token_use_today, info.all_token_today) == (
        "reporting",
        1000,
        3,
        7,
    )
    assert info.available_consumption_options is None
    assert info.raw["token_limit"] == "1 000"


def test_events_answer_counts() -> None:
    body = {
        "code": 200,
        "error": None,
        "msg": "2 events accepted",
        "data": {"accepted": 2, "duplicates": "1"},
    }
    accepted, duplicates, envelope = _calls.events([]).parse(_calls.envelope_of(reply(body)))
    assert (accepted, duplicates) == (2, 1)
    assert envelope.msg == "2 events accepted"


def test_events_go_out_with_exact_decimal_strings() -> None:
    moment = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)
    call = _calls.events(
        [{"id": "a", "product": "rsync", "time": moment, "quantity": Decimal("1E+2")}]
    )
    assert call.content is not None
    assert json.loads(call.content) == [
        {"id": "a", "product": "rsync", "time": "2026-11-22T10:00:00+00:00", "quantity": "100"}
    ]


def test_batches_split_at_ten_thousand() -> None:
    sizes = [len(b) for b in _calls.batches({"id": str(i)} for i in range(20_001))]
    assert sizes == [10_000, 10_000, 1]
    assert list(_calls.batches([])) == []


# --- unreadable shapes -> clear errors -------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>oops</html>", "not a Wolkvox envelope"),
        (b"", "not a Wolkvox envelope"),
        ([1, 2], "not a Wolkvox envelope"),
        ({"hello": "world"}, "not a Wolkvox envelope"),
        ({"code": 200, "data": "rows"}, "not a Wolkvox envelope"),
        ({"code": "OK", "data": []}, "code is not a number"),
    ],
)
def test_unknown_envelopes_raise_a_format_error(body: object, message: str) -> None:
    with pytest.raises(ResponseFormatError, match=message):
        _calls.envelope_of(reply(body))


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ("12,5", "not a number"),
        ("abc", "not a number"),
        ("NaN", "not a finite number"),
        (True, "boolean"),
        ({"v": 1}, "not a number"),
    ],
)
def test_unreadable_items_raise_instead_of_guessing(items: object, message: str) -> None:
    with pytest.raises(ResponseFormatError, match=message):
        rows_of(billing(200, items))


def test_missing_items_field_and_bad_dates_raise() -> None:
    with pytest.raises(ResponseFormatError, match="no items field"):
        rows_of({"code": 200, "data": [{"operation": "acme"}]})
    with pytest.raises(ResponseFormatError, match="not YYYY-MM-DD"):
        rows_of(billing(200, "1", "22/11/2026"))
    with pytest.raises(ResponseFormatError, match="does not exist"):
        rows_of(billing(200, "1", "2026-02-30"))
    with pytest.raises(ResponseFormatError, match="not an object"):
        rows_of({"code": 200, "data": ["1234"]})


def test_token_info_without_a_row_or_with_fractions_raises() -> None:
    with pytest.raises(ResponseFormatError, match="no row"):
        _calls.token_info_call().parse(_calls.envelope_of(reply({"code": 200, "data": []})))
    body = {"code": 200, "data": [{"token_limit": "10.5"}]}
    with pytest.raises(ResponseFormatError, match="whole number"):
        _calls.token_info_call().parse(_calls.envelope_of(reply(body)))


# --- error classification ----------------------------------------------------------------------


def error_body(status: object, error: str, msg: str) -> dict:  # type: ignore[type-arg]
    return {"code": status, "error": error, "msg": msg, "data": []}


@pytest.mark.parametrize(
    ("status", "error", "msg", "cls", "transient"),
    [
        (400, "BAD REQUEST", "THE API YOU WANT TO CONSULT DOES NOT EXIST", UnknownApiError, False),
        (400, "BAD REQUEST", "SOME PARAMETERS ARE REQUIRED: month", BadParametersError, False),
        (401, "UNAUTHORIZED", "PLEASE ENTER THE WOLKVOX-TOKEN", MissingTokenError, False),
        (403, "FORBIDDEN", "PLEASE VALIDATE TOKEN", InvalidTokenError, False),
        (403, "FORBIDDEN", "TOKEN LIMIT EXCEEDED", QuotaExceededError, False),
        (
            403,
            "FORBIDDEN",
            "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)",
            TooManyRequestsError,
            True,
        ),
        (403, "FORBIDDEN", "SERVER IN MAINTENANCE", MaintenanceError, True),
        (413, "PAYLOAD TOO LARGE", "THE BODY IS LARGER THAN 10 BYTES", PayloadTooLargeError, False),
        (500, "INTERNAL SERVER ERROR", "THE SERVER FAILED", ServerError, True),
        (504, "GATEWAY TIMEOUT", "TOO SLOW", ServerError, True),
    ],
)
def test_each_error_row_has_its_class(
    status: int, error: str, msg: str, cls: type[APIStatusError], transient: bool
) -> None:
    with pytest.raises(cls) as caught:
        _calls.envelope_of(reply(error_body(status, error, msg), status, {"Retry-After": "3"}))
    assert type(caught.value) is cls
    assert caught.value.transient is transient
    assert (caught.value.status, caught.value.code, caught.value.error, caught.value.msg) == (
        status,
        status,
        error,
        msg,
    )
    assert caught.value.retry_after == 3.0


def test_a_hosted_200_with_an_error_code_in_the_body_is_an_error() -> None:
    body = error_body("403", "FORBIDDEN", "TOKEN LIMIT EXCEEDED")
    with pytest.raises(QuotaExceededError) as caught:
        _calls.envelope_of(reply(body, 200))
    assert (caught.value.status, caught.value.code) == (403, 403)


def test_a_proxy_error_page_is_classified_by_status() -> None:
    with pytest.raises(ServerError) as caught:
        _calls.envelope_of(reply(b"<html>Bad Gateway</html>", 502))
    assert caught.value.transient
    assert caught.value.raw == "<html>Bad Gateway</html>"


def test_an_unlisted_error_status_is_a_plain_status_error() -> None:
    with pytest.raises(APIStatusError) as caught:
        _calls.envelope_of(reply(error_body(404, "NOT FOUND", "NO SUCH RECORD"), 404))
    assert type(caught.value) is APIStatusError
    assert not caught.value.transient


def test_bad_parameters_error_shows_every_event_problem() -> None:
    """A refused ingest batch: the exception's text names each event's problem, and
    `problems` holds them all."""
    problems = [
        {"index": 0, "field": "quantity", "error": "must not be negative"},
        {"index": 3, "field": "product", "error": "unknown product 'ivr_mins'"},
    ]
    body = {
        "code": 400,
        "error": "BAD REQUEST",
        "msg": "SOME PARAMETERS ARE REQUIRED: invalid events",
        "data": problems,
    }
    with pytest.raises(BadParametersError) as caught:
        _calls.envelope_of(reply(body, 400))
    text = str(caught.value)
    assert text.startswith("400 BAD REQUEST: SOME PARAMETERS ARE REQUIRED: invalid events"), text
    assert "event 0: quantity: must not be negative" in text, text
    assert "event 3: product: unknown product 'ivr_mins'" in text, text
    assert [(p.index, p.field, p.error) for p in caught.value.problems] == [
        (0, "quantity", "must not be negative"),
        (3, "product", "unknown product 'ivr_mins'"),
    ]
    assert caught.value.msg == "SOME PARAMETERS ARE REQUIRED: invalid events"


def test_bad_parameters_error_shows_the_first_problems_of_many() -> None:
    data: list[object] = [{"index": i, "field": "time", "error": "is naive"} for i in range(25)]
    data.append("not a problem row")
    body = {
        "code": 400,
        "error": "BAD REQUEST",
        "msg": "SOME PARAMETERS ARE REQUIRED",
        "data": data,
    }
    with pytest.raises(BadParametersError) as caught:
        _calls.envelope_of(reply(body, 400))
    text = str(caught.value)
    assert "event 19: time: is naive" in text
    assert "event 20:" not in text
    assert "... and 5 more" in text
    assert len(caught.value.problems) == 25


def test_bad_parameters_error_without_problems_is_one_line() -> None:
    body = error_body(400, "BAD REQUEST", "SOME PARAMETERS ARE REQUIRED: month")
    with pytest.raises(BadParametersError) as caught:
        _calls.envelope_of(reply(body, 400))
    assert str(caught.value) == "400 BAD REQUEST: SOME PARAMETERS ARE REQUIRED: month"
    assert caught.value.problems == ()
