"""uvicorn's httptools protocol with limits on how much and how slowly a client may send.

As shipped, it buffers a request line and headers of any size and never times out a client that
sends them, or a body nobody reads, a byte at a time: one client could take the server's memory,
or hold connections for ever. Here a request head is limited to `MAX_HEAD_BYTES` (431 above) and
must arrive within the request time limit (408 after it), and a connection whose reply has been
sent while its request is still arriving is closed at that limit.

uvicorn also drops the host of a request line in absolute form (`GET http://host/path`), which
is the request's effective host (RFC 9112 §3.2.2); here it replaces any `Host` header, so the
application checks the host the client addressed.

`HttpToolsProtocol` is not part of uvicorn's public API, so pyproject.toml pins uvicorn to the
minor release the tests prove, and tests/unit/test_uvicorn_internals.py names every hook and
attribute used here: an upgrade that drops one fails there instead of silently losing a limit.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from voxmeter.entrypoints.http.headers import SECURITY_HEADERS
from voxmeter.entrypoints.http.replies import Error, encode
from voxmeter.entrypoints.wire.errors import PROTOCOL

MAX_HEAD_BYTES = 64 * 1024
"""Request line and headers together; hosted-API clients send a few hundred bytes."""

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration, serving HTTP with `LimitedHttpTools` under `request_timeout`
    (and no WebSocket upgrades: the API has none)."""

    def __init__(self, app: Any, *, request_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, http=LimitedHttpTools, ws="none", **kwargs)
        self.request_timeout = request_timeout


class LimitedHttpTools(HttpToolsProtocol):
    """httptools with a bounded request head and a deadline on receiving each request."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._timeout = float(getattr(config, "request_timeout", 60.0))
        self._due: float | None = None
        """When the request being received must have arrived (loop time); None: none is."""
        self._timer: asyncio.TimerHandle | None = None
        self._in_head = True
        self._in_message = False
        self._head_bytes = 0
        self._tail = b""
        self._ended_in_chunk = False
        """A request ended within the bytes being parsed: what follows in them is not counted."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head and self._head_bytes + len(data) > MAX_HEAD_BYTES and not self._ends(data):
            self._refuse(431, limit=MAX_HEAD_BYTES)
            return
        counted = self._in_head
        self._ended_in_chunk = False
        super().data_received(data)
        if self.transport.is_closing():
            return
        if counted and self._in_head and not self._ended_in_chunk:
            self._head_bytes += len(data)
            self._tail = data[-3:]
        if self._due is None and not self._in_message and not self._answering():
            self._arm()  # bytes between requests: the keep-alive timer no longer runs

    def _ends(self, data: bytes) -> bool:
        """Whether the head in progress ends in `data` within the limit."""
        seen = self._tail + data
        return seen.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES - self._head_bytes + len(self._tail)) >= 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._in_message = True
        self._head_bytes = 0
        self._tail = b""
        self._arm()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._host_from_target()
        super().on_headers_complete()

    def _host_from_target(self) -> None:
        """A target in absolute form names the host: it stands in for every `Host` header."""
        if self.url[:1] == b"/":  # origin form, the usual case
            return
        try:
            target = httptools.parse_url(self.url)
        except httptools.HttpParserError:
            return  # uvicorn refuses it next
        if not target.host:
            return
        host = b"[" + target.host + b"]" if b":" in target.host else target.host
        if target.port is not None:
            host += b":%d" % target.port
        self.headers[:] = [(n, v) for n, v in self.headers if n != b"host"] + [(b"host", host)]

    def on_message_complete(self) -> None:
        # The next request's head may start in the same chunk; counting none of that chunk
        # lets a head exceed the limit by at most one socket read, never without bound.
        self._ended_in_chunk = True
        self._in_message = False
        self._in_head = True  # what comes next on this connection starts another request
        self._head_bytes = 0
        self._tail = b""
        self._disarm()
        super().on_message_complete()

    def _answering(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _arm(self) -> None:
        """Start the clock; one timer per connection, moved on lazily (requests are many)."""
        self._due = self.loop.time() + self._timeout
        if self._timer is None:
            self._timer = self.loop.call_at(self._due, self._late)

    def _disarm(self) -> None:
        self._due = None

    def _late(self) -> None:
        self._timer = None
        if self._due is None or self.transport.is_closing():
            return
        if self.loop.time() < self._due:
            self._timer = self.loop.call_at(self._due, self._late)
            return
        if self._answering():
            self._arm()  # the app is still answering, under its own time limit
        elif self._in_head:
            self._refuse(408)
        else:
            self.transport.close()  # answered, but the request body is still trickling in

    def _refuse(self, status: int, **fields: object) -> None:
        """An envelope error written straight to the connection, which is then closed (without
        a reply while an earlier, pipelined request is still being answered)."""
        if self._answering():
            self.transport.close()
            return
        row = PROTOCOL[status]
        msg = row.template.format_map(fields) if fields and row.template else row.msg
        body = encode(Error(status, row.error, msg, []))
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])]
        headers = [
            *self.server_state.default_headers,
            *SECURITY_HEADERS,
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            (b"connection", b"close"),
        ]
        head += [name + b": " + value + b"\r\n" for name, value in headers]
        self.transport.write(b"".join(head) + b"\r\n" + body)
        self.transport.close()
