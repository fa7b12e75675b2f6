"""A request that cannot finish in time is answered with an error, never left hanging
(docs/limits.md)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import pytest

from tests.e2e.harness import VoxServer

pytestmark = pytest.mark.serial  # request time limits: measured alone


def _stalled_upload(server: VoxServer, token: str) -> socket.socket:
    """A POST that promises 500 bytes and sends one."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(
        b"POST /api/v2/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 500\r\n"
        + f"wolkvox-token: {token}\r\n\r\n[".encode()
    )
    return sock


def _reply(sock: socket.socket) -> tuple[int, dict[str, object]]:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, json.loads(body)


def test_stalled_uploads_get_504_and_free_their_slots(
    make_server: Callable[..., VoxServer],
) -> None:
    server = make_server("--request-timeout", "1.5")
    tenant = server.tenant()
    started = time.monotonic()
    stalled = [_stalled_upload(server, tenant.token) for _ in range(2)]
    time.sleep(0.3)
    # Both slots are taken while the uploads stall.
    busy = server.billing(tenant.token, "ivr_minutes")
    assert busy.status_code == 403
    assert "SIMULTANEOUS" in busy.json()["msg"]
    for sock in stalled:
        status, body = _reply(sock)
        sock.close()
        assert status == 504
        assert body["code"] == 504
        assert body["error"] == "GATEWAY TIMEOUT"
    assert time.monotonic() - started < 10
    # The slots are free again and nothing was stored.
    assert server.items(tenant.token, "ivr_minutes") == "0"
