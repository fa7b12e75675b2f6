"""The app `voxmeter serve` runs, served inside the test process.

Input, envelope and auth cases need the app's whole request path (routing, guard, limits,
storage, envelope) but not a separate process: no signals, sockets or workers are involved. Here
the app is built exactly as `voxmeter serve` builds it (`bootstrap.context`, `app_state`,
`create_app`), its ASGI lifespan runs (the background tasks with it) over a real database, and
requests go through `httpx.ASGITransport`. The app's event loop runs on a thread of its own (an
anyio blocking portal) so the tests stay synchronous. The helpers are VoxServer's
(harness.ServerApi).
"""

from __future__ import annotations

import os
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import replace
from functools import partial
from typing import Any

import anyio
import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal

from tests.e2e.harness import ServerApi
from voxmeter import bootstrap
from voxmeter.config import Settings
from voxmeter.entrypoints.http.app import create_app
from voxmeter.entrypoints.http.types import ASGIApp, Message

#: The origin of every URL of an in-process app (no socket is opened).
BASE = "http://127.0.0.1:8000"


class AppServer(ServerApi):
    """The app over database `db`, with the settings `voxmeter serve --db DB [--redis URL]`
    would have in this environment; a context manager (its lifespan runs inside)."""

    def __init__(
        self, db: str, redis_url: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        settings = replace(Settings.from_env({**os.environ, **(env or {})}), database_url=db)
        if redis_url:
            settings = replace(settings, redis_url=redis_url)
        self.db = db
        self.base = BASE
        self.ctx = bootstrap.context(settings)
        self.app: ASGIApp = create_app(bootstrap.app_state(settings, self.ctx))
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._lifespan: Future[None] | None = None
        self._stop: anyio.Event | None = None

    def __enter__(self) -> AppServer:
        self._portal_cm = start_blocking_portal()
        self.portal = self._portal_cm.__enter__()
        self._lifespan, _ = self.portal.start_task(self._run_lifespan)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=BASE)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._portal_cm is not None
        assert self._lifespan is not None
        assert self._stop is not None
        try:
            self.portal.call(self.client.aclose)
            self.portal.call(self._stop.set)
            self._lifespan.result(timeout=30)  # the lifespan ends: counters flushed
        finally:
            self._portal_cm.__exit__(None, None, None)
            self.ctx.storage.close()  # what the end of a server process does

    async def _run_lifespan(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """The ASGI lifespan protocol, as uvicorn speaks it: startup, then shutdown on exit."""
        self._stop = anyio.Event()
        stop = self._stop
        asked: list[str] = []

        async def receive() -> Message:
            if not asked:
                asked.append("startup")
                return {"type": "lifespan.startup"}
            await stop.wait()
            return {"type": "lifespan.shutdown"}

        async def send(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                task_status.started()
            elif message["type"].endswith(".failed"):
                raise RuntimeError(f"lifespan: {message.get('message')}")

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        await self.app(scope, receive, send)

    def url(self, path: str) -> str:
        return self.base + path

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """requests' keywords mapped to httpx's (`data` bytes are the body)."""
        if isinstance(kw.get("data"), bytes | str):
            kw["content"] = kw.pop("data")
        if "allow_redirects" in kw:
            kw["follow_redirects"] = kw.pop("allow_redirects")
        kw.pop("timeout", None)
        return self.portal.call(partial(self.client.request, method, self.url(path), **kw))
