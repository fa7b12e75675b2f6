"""`protocol.LimitedHttpTools` extends uvicorn's non-public httptools protocol. These checks name
every hook and attribute it relies on, so a uvicorn release that renames or drops one fails here,
plainly, instead of silently losing the request-head limits or the absolute-form host."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from voxmeter.entrypoints.http.protocol import LimitedHttpTools, ServerConfig

HOOKS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_headers_complete",
    "on_message_complete",
)
"""Parent methods the subclass overrides and calls through `super()`."""


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 5000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def protocol() -> Iterator[tuple[LimitedHttpTools, _Transport]]:
    loop = asyncio.new_event_loop()
    try:
        config = ServerConfig(_app, request_timeout=5.0, log_level="warning")
        proto = LimitedHttpTools(config, ServerState(), {}, _loop=loop)
        transport = _Transport()
        proto.connection_made(transport)
        yield proto, transport
        pending = asyncio.all_tasks(loop)
        if pending:  # the request handed to the app: let it answer
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        proto.connection_lost(None)
    finally:
        loop.close()


def test_the_parent_hooks_exist_with_the_signatures_used() -> None:
    for name in HOOKS:
        hook = getattr(HttpToolsProtocol, name, None)
        assert callable(hook), f"uvicorn {uvicorn.__version__}: HttpToolsProtocol.{name} is gone"
    params = list(inspect.signature(HttpToolsProtocol.__init__).parameters)
    assert params[:3] == ["self", "config", "server_state"], (
        f"uvicorn {uvicorn.__version__}: HttpToolsProtocol.__init__ takes {params}"
    )


def test_config_still_takes_a_protocol_class_and_no_websockets() -> None:
    config = ServerConfig(_app, request_timeout=5.0, log_level="warning")
    config.load()
    assert config.http_protocol_class is LimitedHttpTools
    assert config.request_timeout == 5.0


def test_the_attributes_the_subclass_reads_are_set_by_the_parent(
    protocol: tuple[LimitedHttpTools, _Transport],
) -> None:
    proto, transport = protocol
    for name in ("transport", "loop", "server_state", "cycle"):
        assert hasattr(proto, name), f"uvicorn {uvicorn.__version__}: no `{name}` on the protocol"
    assert proto.transport is transport
    assert isinstance(proto.server_state.default_headers, list)
    proto.data_received(b"GET http://wv7.example.com:81/api/v2/billing.php?api=all HTTP/1.1\r\n")
    proto.data_received(b"Host: elsewhere\r\nX-A: 1\r\n\r\n")
    for name in ("url", "headers"):
        assert hasattr(proto, name), f"uvicorn {uvicorn.__version__}: no `{name}` on the protocol"
    # The request target and headers, as the absolute-form rewrite reads and replaces them.
    assert proto.url == b"http://wv7.example.com:81/api/v2/billing.php?api=all"
    assert (b"host", b"wv7.example.com:81") in proto.headers
    assert (b"host", b"elsewhere") not in proto.headers
    assert proto.cycle is not None
    assert proto.cycle.response_complete is False
    assert (b"host", b"wv7.example.com:81") in proto.cycle.scope["headers"]


def test_an_oversized_head_is_refused_through_the_parent_transport(
    protocol: tuple[LimitedHttpTools, _Transport],
) -> None:
    proto, transport = protocol
    proto.data_received(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * (70 * 1024))
    assert transport.written.startswith(b"HTTP/1.1 431 ")
    assert transport.closed
