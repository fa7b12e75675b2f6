"""Bad ingest input (docs/api.md, Ingest and Errors): a clear envelope error, status == code,
nothing stored."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.e2e.harness import Tenant, VoxServer, all_events, local_stamp
from tests.e2e.inprocess import AppServer

Event = dict[str, object]
Snapshot = tuple[list[str], list[Event]]


def _now(offset: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) - timedelta(seconds=1) + offset).isoformat()


def _good(n: int, tag: str) -> list[Event]:
    """Valid events that must not be stored when a batch around them is refused."""
    return [
        {"id": f"good-{tag}-{i}", "product": "ivr_minutes", "time": _now(), "quantity": "1.5"}
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def server(app_server: AppServer) -> AppServer:
    """These cases need no separate process: the app runs in this one (inprocess.py); the body
    size limit, which involves the socket, is checked on a real server below."""
    return app_server


@pytest.fixture(scope="module")
def tenant(server: VoxServer) -> Tenant:
    """One operation for the whole module: every test checks that it stayed exactly as it was."""
    op = server.tenant(licenses=3)
    seed = [
        {"id": "seed-1", "product": "ivr_minutes", "time": _now(), "quantity": "2.5"},
        {"id": "seed-2", "product": "pbx_licenses", "time": _now(), "quantity": "7"},
        {"id": "seed-3", "product": "interactions", "time": _now()},
    ]
    assert server.post_events(op.token, seed).status_code == 200
    return op


def _snapshot(server: VoxServer, tenant: Tenant) -> Snapshot:
    billing = server.billing(tenant.token, "all")
    assert billing.status_code == 200, billing.text
    now = datetime.now(UTC)
    listed = all_events(
        server,
        tenant.token,
        local_stamp(now - timedelta(days=30), "UTC"),
        local_stamp(now + timedelta(days=1), "UTC"),
    )
    return [row["items"] for row in billing.json()["data"]], listed


@pytest.fixture
def unchanged(server: VoxServer, tenant: Tenant) -> Iterator[None]:
    """Asserts after the test that no figure and no listed event changed."""
    before = _snapshot(server, tenant)
    assert before[0][3] == "3"  # ivr_minutes: the seed's 2.5 rounded up
    assert len(before[1]) == 3
    yield
    assert _snapshot(server, tenant) == before


def _post_raw(
    server: VoxServer, token: str, body: bytes, content_type: str | None = "application/json"
) -> requests.Response:
    headers = {"wolkvox-token": token}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return server.post("/api/v2/events", data=body, headers=headers)


def _refused(reply: requests.Response, status: int = 400) -> dict:  # type: ignore[type-arg]
    """An error envelope whose code equals the HTTP status, with a message that says why."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert list(body) == ["code", "error", "msg", "data"], body
    assert body["code"] == status, body
    if status == 400:
        assert body["error"] == "BAD REQUEST", body
        assert body["msg"].startswith("SOME PARAMETERS ARE REQUIRED: "), body
        assert len(body["msg"]) > len("SOME PARAMETERS ARE REQUIRED: ") + 3, body
    return body  # type: ignore[no-any-return]


def _problems(body: dict) -> list[tuple[int, str]]:  # type: ignore[type-arg]
    """The (index, field) of every listed problem, checking each has a readable error."""
    found = []
    for problem in body["data"]:
        assert set(problem) == {"index", "field", "error"}, problem
        assert isinstance(problem["error"], str), problem
        assert len(problem["error"]) >= 5, problem
        found.append((problem["index"], problem["field"]))
    return found


# -- one invalid event among valid ones ------------------------------------------------------


def _ev(**fields: object) -> Callable[[], Event]:
    """A bad event: a valid ivr_minutes event with `fields` replaced (None removes a field)."""

    def build() -> Event:
        event: Event = {"id": "bad", "product": "ivr_minutes", "time": _now(), "quantity": "1"}
        for name, value in fields.items():
            if value is None:
                event.pop(name)
            else:
                event[name] = value
        return event

    return build


BAD_EVENTS: dict[str, tuple[Callable[[], Event], str]] = {
    "id-as-number": (_ev(id=12345), "id"),
    "id-missing": (_ev(id=None), "id"),
    "id-empty": (_ev(id=""), "id"),
    "id-129-chars": (_ev(id="x" * 129), "id"),
    "id-with-newline": (_ev(id="a\nb"), "id"),
    "quantity-bool": (_ev(quantity=True), "quantity"),
    "quantity-object": (_ev(quantity={"value": 1}), "quantity"),
    "quantity-string-NaN": (_ev(quantity="NaN"), "quantity"),
    "quantity-string-Infinity": (_ev(quantity="Infinity"), "quantity"),
    "quantity-string-minus-Infinity": (_ev(quantity="-Infinity"), "quantity"),
    "quantity-negative-number": (_ev(quantity=-1), "quantity"),
    "quantity-negative-string": (_ev(quantity="-0.5"), "quantity"),
    "quantity-7-decimals-string": (_ev(quantity="0.1234567"), "quantity"),
    "quantity-7-decimals-number": (_ev(quantity=2.0000001), "quantity"),
    "quantity-not-a-number": (_ev(quantity="ten"), "quantity"),
    "quantity-missing-sum-product": (_ev(quantity=None), "quantity"),
    "count-fraction": (_ev(product="interactions", quantity=1.5), "quantity"),
    "count-zero": (_ev(product="interactions", quantity=0), "quantity"),
    "level-without-quantity": (_ev(product="pbx_licenses", quantity=None), "quantity"),
    "time-naive": (_ev(time="2026-01-05T10:00:00"), "time"),
    "time-10-minutes-in-future": (lambda: _ev(time=_now(timedelta(minutes=10)))(), "time"),
    "time-unparseable": (_ev(time="yesterday at noon"), "time"),
    "time-impossible-date": (_ev(time="2026-02-30T10:00:00Z"), "time"),
    "time-as-epoch-number": (_ev(time=1_790_000_000), "time"),
    "time-missing": (_ev(time=None), "time"),
    "product-unknown": (_ev(product="ivr_minute"), "product"),
    "product-missing": (_ev(product=None), "product"),
    "subject-129-chars": (_ev(subject="s" * 129), "subject"),
}


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("ndjson", [False, True], ids=["json", "ndjson"])
@pytest.mark.parametrize("case", sorted(BAD_EVENTS))
def test_one_bad_event_rejects_the_batch(
    server: VoxServer, tenant: Tenant, case: str, ndjson: bool
) -> None:
    build, field = BAD_EVENTS[case]
    batch = [*_good(1, f"{case}-a"), build(), *_good(2, f"{case}-b")]
    body = _refused(server.post_events(tenant.token, batch, ndjson=ndjson))
    assert _problems(body) == [(1, field)], body


@pytest.mark.usefixtures("unchanged")
def test_unknown_field_is_refused_not_ignored(server: VoxServer, tenant: Tenant) -> None:
    event = {"id": "misspelt", "product": "ivr_minutes", "time": _now(), "quantiy": "5"}
    body = _refused(server.post_events(tenant.token, [*_good(1, "uf"), event]))
    assert len(body["data"]) == 1, body
    assert body["data"][0]["index"] == 1
    assert "quantiy" in body["data"][0]["field"] + body["data"][0]["error"], body


@pytest.mark.usefixtures("unchanged")
def test_raw_nan_and_infinity_tokens_are_malformed_json(server: VoxServer, tenant: Tenant) -> None:
    for token in ("NaN", "Infinity", "-Infinity"):
        body = b'[{"id": "raw", "product": "ivr_minutes", "time": "%s", "quantity": %s}]' % (
            _now().encode(),
            token.encode(),
        )
        refused = _refused(_post_raw(server, tenant.token, body))
        assert refused["data"] == [] or _problems(refused) == [(0, "quantity")], refused


# -- every problem of a batch is listed ------------------------------------------------------


@pytest.mark.usefixtures("unchanged")
def test_every_problem_is_listed_with_index_and_field(server: VoxServer, tenant: Tenant) -> None:
    """Rule violations in several events (types all correct): each is reported."""
    batch = [
        *_good(1, "multi-a"),
        _ev(product="nope")(),
        *_good(1, "multi-b"),
        _ev(quantity="-3")(),
        _ev(time=_now(timedelta(minutes=30)))(),
        _ev(product="interactions", quantity="2.5")(),
        _ev(product="pbx_licenses", quantity=None)(),
        *_good(1, "multi-c"),
        _ev(quantity="NaN")(),
    ]
    body = _refused(server.post_events(tenant.token, batch))
    assert sorted(_problems(body)) == [
        (1, "product"),
        (3, "quantity"),
        (4, "time"),
        (5, "quantity"),
        (6, "quantity"),
        (8, "quantity"),
    ], body


@pytest.mark.usefixtures("unchanged")
def test_every_type_problem_is_listed(server: VoxServer, tenant: Tenant) -> None:
    """Shape/type violations (id, time, quantity types) in several events: each is reported."""
    batch = [
        *_good(2, "types-a"),
        _ev(id=7)(),
        _ev(time="2026-01-05T10:00:00")(),
        *_good(1, "types-b"),
        _ev(id="y" * 129)(),
        _ev(quantity=False)(),
    ]
    body = _refused(server.post_events(tenant.token, batch, ndjson=True))
    assert sorted(_problems(body)) == [(2, "id"), (3, "time"), (5, "id"), (6, "quantity")], body


@pytest.mark.usefixtures("unchanged")
def test_type_and_rule_problems_in_one_batch_are_all_listed(
    server: VoxServer, tenant: Tenant
) -> None:
    """`data` lists EVERY problem, whatever kind each one is."""
    batch = [
        *_good(1, "mixed-a"),
        _ev(id=12345)(),  # a type problem
        _ev(product="unknown_product")(),  # a rule problem
        _ev(time="2026-01-05T10:00:00")(),  # a type problem (naive time)
        _ev(quantity="-1")(),  # a rule problem
        *_good(1, "mixed-b"),
    ]
    body = _refused(server.post_events(tenant.token, batch))
    assert sorted(_problems(body)) == [(1, "id"), (2, "product"), (3, "time"), (4, "quantity")], (
        body
    )


@pytest.mark.usefixtures("unchanged")
def test_one_bad_event_among_9999_good_ones(server: VoxServer, tenant: Tenant) -> None:
    batch = _good(9_999, "big")
    batch.insert(6_543, _ev(product="pbx_licenses", quantity=None)())
    body = _refused(server.post_events(tenant.token, batch))
    assert _problems(body) == [(6_543, "quantity")], body


# -- bodies that are not a batch -------------------------------------------------------------

VALID_LINE = '{"id": "fine", "product": "ivr_minutes", "time": "%s", "quantity": "1"}'

BAD_BODIES: dict[str, tuple[Callable[[], bytes], str]] = {
    "malformed-json": (lambda: b'[{"id": "a", "product": "ivr_minutes",', "application/json"),
    "trailing-garbage": (
        lambda: b"[" + (VALID_LINE % _now()).encode() + b"] x",
        "application/json",
    ),
    "non-utf8-in-string": (
        lambda: (
            b'[{"id": "caf\xe9", "product": "ivr_minutes", "time": "%s", "quantity": "1"}]'
            % _now().encode()
        ),
        "application/json",
    ),
    "non-utf8-in-string-ndjson": (
        lambda: (
            b'{"id": "caf\xe9", "product": "ivr_minutes", "time": "%s", "quantity": "1"}'
            % _now().encode()
        ),
        "application/x-ndjson",
    ),
    "non-utf8-latin1-body": (
        lambda: ("[" + VALID_LINE.replace("fine", "ca\u00f1a") % _now() + "]").encode("latin-1"),
        "application/json",
    ),
    "non-utf8-bom-bytes": (lambda: b"\xff\xfe[]", "application/json"),
    "utf16-body": (lambda: ("[" + VALID_LINE % _now() + "]").encode("utf-16"), "application/json"),
    "object-not-array": (lambda: (VALID_LINE % _now()).encode(), "application/json"),
    "array-of-arrays": (lambda: b'[["a", "ivr_minutes"]]', "application/json"),
    "json-null": (lambda: b"null", "application/json"),
    "empty-array": (lambda: b"[]", "application/json"),
    "empty-body-json": (lambda: b"", "application/json"),
    "empty-body-ndjson": (lambda: b"", "application/x-ndjson"),
    "blank-lines-ndjson": (lambda: b"\n\n  \n", "application/x-ndjson"),
    "ndjson-sent-as-json": (
        lambda: ((VALID_LINE % _now()) + "\n" + (VALID_LINE % _now())).encode(),
        "application/json",
    ),
    "text-plain": (lambda: ("[" + VALID_LINE % _now() + "]").encode(), "text/plain"),
    "form-encoded": (
        lambda: ("[" + VALID_LINE % _now() + "]").encode(),
        "application/x-www-form-urlencoded",
    ),
}


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_body(server: VoxServer, tenant: Tenant, case: str) -> None:
    build, content_type = BAD_BODIES[case]
    body = _refused(_post_raw(server, tenant.token, build(), content_type))
    if case == "array-of-arrays":  # a per-event problem: the element is not an object
        assert [problem["index"] for problem in body["data"]] == [0], body
    elif case.startswith("non-utf8"):  # the body, or the event holding it (by msgspec release)
        assert [problem["index"] for problem in body["data"]] in ([], [0]), body
    else:
        assert body["data"] == [], body


@pytest.mark.usefixtures("unchanged")
def test_missing_content_type(server: VoxServer, tenant: Tenant) -> None:
    body = ("[" + VALID_LINE % _now() + "]").encode()
    refused = _refused(_post_raw(server, tenant.token, body, None))
    assert "Content-Type" in refused["msg"] or "content type" in refused["msg"].lower()


@pytest.mark.usefixtures("unchanged")
def test_ndjson_line_that_is_not_json(server: VoxServer, tenant: Tenant) -> None:
    lines = [VALID_LINE.replace("fine", "l0") % _now(), "{not json", VALID_LINE % _now()]
    body = _refused(
        _post_raw(server, tenant.token, "\n".join(lines).encode(), "application/x-ndjson")
    )
    assert [p["index"] for p in body["data"]] == [1], body


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("ndjson", [False, True], ids=["json", "ndjson"])
def test_10001_events_is_too_many(server: VoxServer, tenant: Tenant, ndjson: bool) -> None:
    body = _refused(server.post_events(tenant.token, _good(10_001, "toomany"), ndjson=ndjson))
    assert "10000" in body["msg"].replace(",", ""), body
    assert body["data"] == []


def test_over_size_body_is_413_and_stores_nothing(make_server: Callable[..., VoxServer]) -> None:
    srv = make_server("--max-body-bytes", "4096")
    tenant = srv.tenant()
    small = _good(10, "small")  # about 1 KB: fits
    small_reply = srv.post_events(tenant.token, small)
    assert small_reply.status_code == 200, small_reply.text

    big = _good(60, "big")  # about 6 KB
    assert len(json.dumps(big)) > 4096
    for ndjson in (False, True):
        body = _refused(srv.post_events(tenant.token, big, ndjson=ndjson), 413)
        assert body["error"] == "PAYLOAD TOO LARGE"
        assert "4096" in body["msg"].replace(",", ""), body
        assert body["data"] == []

    # Streamed without a Content-Length (chunked): refused the same way.
    payload = json.dumps(big).encode()
    chunked = requests.post(
        srv.url("/api/v2/events"),
        data=iter([payload[i : i + 1000] for i in range(0, len(payload), 1000)]),
        headers={"wolkvox-token": tenant.token, "Content-Type": "application/json"},
        timeout=30,
    )
    assert "Content-Length" not in chunked.request.headers
    _refused(chunked, 413)

    assert srv.items(tenant.token, "ivr_minutes") == "20"  # the 10 small events, 1.5 -> 2 each
    now = datetime.now(UTC)
    listed = all_events(
        srv,
        tenant.token,
        local_stamp(now - timedelta(days=1), "UTC"),
        local_stamp(now + timedelta(days=1), "UTC"),
    )
    assert sorted(e["id"] for e in listed) == sorted(e["id"] for e in small)
