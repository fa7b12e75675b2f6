"""How each reply is judged: an expected success, an expected refusal, or unexpected."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bench.soak.ledger import BAD, JsonDict

# --- judging responses -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    verdict: str
    """"ok", "refused" (an intended refusal) or "unexpected"."""
    label: str = ""
    detail: str = ""


OK = Outcome("ok")


@dataclass(frozen=True)
class Refusal:
    """One error row of the API (docs/api.md, Errors) the request is meant to get."""

    label: str
    status: int
    error: str
    msg: str
    prefix: bool = False
    retry_after: bool = False
    problems: frozenset[int] | None = None
    """For a refused batch: the indexes `data` must list."""


def bad(msg: str, prefix: bool = True, problems: frozenset[int] | None = None) -> Refusal:
    return Refusal(BAD, 400, "BAD REQUEST", msg, prefix=prefix, problems=problems)


UNKNOWN_API = bad("THE API YOU WANT TO CONSULT DOES NOT EXIST", prefix=False)
PARAMETERS = "SOME PARAMETERS ARE REQUIRED"


def body_of(reply: httpx.Response) -> JsonDict | None:
    try:
        body = reply.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def unexpected_status(reply: httpx.Response, wanted: int) -> Outcome:
    label = "5xx" if reply.status_code >= 500 else "wrong status"
    return Outcome(
        "unexpected", label, f"{reply.status_code} (wanted {wanted}): {reply.text[:300]}"
    )


def judge_ok(reply: httpx.Response, check: Callable[[JsonDict], str | None]) -> Outcome:
    """A success must be a 200 envelope whose body passes `check`."""
    if reply.status_code != 200:
        return unexpected_status(reply, 200)
    body = body_of(reply)
    if body is None or body.get("code") != 200 or body.get("error") is not None:
        return Outcome("unexpected", "wrong body", reply.text[:300])
    problem = check(body)
    if problem:
        return Outcome("unexpected", "wrong body", f"{problem}: {reply.text[:300]}")
    return OK


def expect_ok(check: Callable[[JsonDict], str | None]) -> Callable[[httpx.Response], Outcome]:
    return lambda reply: judge_ok(reply, check)


def expect_refusal(row: Refusal) -> Callable[[httpx.Response], Outcome]:
    return lambda reply: judge_refusal(reply, row)


def judge_refusal(reply: httpx.Response, row: Refusal) -> Outcome:
    """A refusal must be exactly its envelope row, status equal to `code`."""
    if reply.status_code != row.status:
        return unexpected_status(reply, row.status)
    body = body_of(reply)
    why = ""
    if body is None:
        why = "not a JSON object"
    elif body.get("code") != row.status or body.get("error") != row.error:
        why = "code/error differ"
    elif not isinstance(body.get("msg"), str) or not (
        body["msg"].startswith(row.msg) if row.prefix else body["msg"] == row.msg
    ):
        why = f"msg is not {row.msg!r}"
    elif not isinstance(body.get("data"), list):
        why = "data is not a list"
    elif row.problems is None and body["data"]:
        why = "data is not []"
    elif row.problems is not None and (
        not all(isinstance(p, dict) and {"index", "field", "error"} <= set(p) for p in body["data"])
        or {p["index"] for p in body["data"]} != row.problems
    ):
        why = f"data does not list exactly indexes {sorted(row.problems)}"
    elif row.retry_after and not reply.headers.get("retry-after", "").isdigit():
        why = "no Retry-After"
    if why:
        return Outcome("unexpected", "wrong body", f"{why}: {reply.text[:300]}")
    return Outcome("refused", row.label)
