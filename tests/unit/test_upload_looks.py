"""Early looks at an upload's start: only for bodies large enough that not reading the rest
matters (or whose length is not declared); smaller ones are read whole and left to the decoder."""

from __future__ import annotations

import anyio
import pytest
from starlette.requests import Request
from starlette.types import Message

from voxmeter.entrypoints.http.uploads import (
    EARLY_LOOKS,
    LOOKED_AT_ABOVE,
    UploadBudget,
    upload,
)
from voxmeter.errors import BadParameters

CHUNK = 64 * 1024
LIMIT = 16 * 1024 * 1024


def _request(body: bytes, declared: bool) -> Request:
    """A POST whose body arrives in chunks of 64 KiB, as a server hands them over."""
    chunks = [body[at : at + CHUNK] for at in range(0, len(body), CHUNK)]
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1}
        for n, chunk in enumerate(chunks)
    ]
    messages.reverse()

    async def receive() -> Message:
        return messages.pop()

    headers = [(b"content-type", b"application/json")]
    if declared:
        headers.append((b"content-length", str(len(body)).encode()))
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    return Request(scope, receive)


def _looked(body: bytes, declared: bool) -> list[int]:
    """The start lengths shown to the look while `body` was read (read whole)."""
    seen: list[int] = []

    async def main() -> None:
        budget = UploadBudget(2 * LIMIT)
        async with upload(
            _request(body, declared), budget, LIMIT, lambda s: seen.append(len(s))
        ) as got:
            assert got == body

    anyio.run(main)
    return seen


def test_a_body_declared_within_the_bound_is_read_whole_without_looks() -> None:
    assert _looked(b" " * LOOKED_AT_ABOVE, declared=True) == []


@pytest.mark.parametrize("declared", [True, False])
def test_a_larger_body_or_one_of_undeclared_length_is_looked_at(declared: bool) -> None:
    size = LOOKED_AT_ABOVE + 1 if declared else max(EARLY_LOOKS)
    seen = _looked(b" " * size, declared)
    assert len(seen) == len(EARLY_LOOKS)
    assert all(at <= length < at + CHUNK for at, length in zip(EARLY_LOOKS, seen, strict=True))


def test_a_refusing_look_ends_a_large_upload_early() -> None:
    body = b"[" + b"0," * (LIMIT // 2 - 1)

    def look(start: bytes) -> None:
        raise BadParameters("too many")

    async def main() -> None:
        async with upload(_request(body, True), UploadBudget(2 * LIMIT), LIMIT, look):
            raise AssertionError("the body was handed over")

    with pytest.raises(BadParameters):
        anyio.run(main)
