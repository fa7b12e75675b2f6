"""`Client` and `AsyncClient` for any Wolkvox-compatible billing server.

Configuration is explicit arguments, then the environment (`WOLKVOX_TOKEN`), then defaults, as
in openai-python. The shared base holds everything but the waiting; the two subclasses are the
only place where sync and async differ.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import TracebackType
from typing import Any, TypeVar

import httpx

from voxmeter.client import _calls, _slots
from voxmeter.client._calls import Call, Month
from voxmeter.client._errors import (
    APIConnectionError,
    APITimeoutError,
    UnknownApiError,
    VoxmeterClientError,
)
from voxmeter.client._models import IngestResult, TokenInfo, UsageRow
from voxmeter.client._process_slots import ProcessSlots
from voxmeter.client._retry import RetryPolicy
from voxmeter.domain.catalog import Catalog

T = TypeVar("T")

log = logging.getLogger("voxmeter.client")

DEFAULT_BASE_URL = "https://wv{server}.wolkvox.com"
DEFAULT_TIMEOUT = 60.0
"""The hosted API allows 60 s per call."""
DEFAULT_MAX_RETRIES = 2
TOKEN_ENV = "WOLKVOX_TOKEN"  # noqa: S105 (the variable name, not a secret)


@contextmanager
def _network_errors() -> Iterator[None]:
    """httpx's transport failures as the client's own (transient) classes."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise APITimeoutError(f"no answer in time: {exc}") from exc
    except httpx.TransportError as exc:
        raise APIConnectionError(f"connection failed: {exc}") from exc


class _BaseClient:
    """Configuration, request building and retry decisions shared by both clients."""

    def __init__(
        self,
        *,
        server: str | int,
        token: str | None,
        base_url: str | None,
        timeout: float,
        max_retries: int,
        max_in_flight: int,
        catalog: Catalog | None,
    ) -> None:
        self.server = str(server)
        self._token = os.environ.get(TOKEN_ENV, "") if token is None else token
        self.base_url = (base_url or DEFAULT_BASE_URL.format(server=self.server)).rstrip("/")
        self.timeout = timeout
        self.max_in_flight = _slots.check_limit(max_in_flight)
        self._policy = RetryPolicy(max_retries=max_retries)
        self._slot_key = _slots.key(self.base_url, self._token)
        self._catalog = catalog or Catalog.load()
        self._all_supported: bool | None = None
        """Whether the server answers `api=all`; learnt on first use."""

    @property
    def max_retries(self) -> int:
        return self._policy.max_retries

    def __repr__(self) -> str:  # never the token
        return f"{type(self).__name__}(server={self.server!r}, base_url={self.base_url!r})"

    def _headers(self, call: Call[Any]) -> dict[str, str]:
        headers = {"Accept": "application/json", "wolkvox_server": self.server, **call.headers}
        if self._token:
            headers["wolkvox-token"] = self._token
        return headers

    def _build(self, http: httpx.Client | httpx.AsyncClient, call: Call[Any]) -> httpx.Request:
        return http.build_request(
            call.method,
            self.base_url + call.path,
            params=call.params,
            content=call.content,
            headers=self._headers(call),
            timeout=self.timeout,
        )

    def _retry_delay(self, call: Call[Any], attempt: int, error: VoxmeterClientError) -> float:
        """The wait before the next attempt; re-raises `error` when it must not be retried."""
        delay = self._policy.delay(attempt, error)
        if delay is None:
            raise error
        log.info(
            "retrying %s %s in %.2fs after %s (attempt %d of %d)",
            call.method,
            call.path,
            delay,
            type(error).__name__,
            attempt + 1,
            self._policy.max_retries,
        )
        return delay

    def _sweep_calls(self, month: Month | None) -> list[Call[list[UsageRow]]]:
        return [_calls.usage(p.api, month, self._catalog) for p in self._catalog]


class Client(_BaseClient):
    """Blocking client. Thread-safe; use as a context manager or call `close()`."""

    def __init__(
        self,
        server: str | int,
        token: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_in_flight: int = 1,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        catalog: Catalog | None = None,
        process_lock: bool = False,
    ) -> None:
        """`process_lock` also bounds requests across processes (the CLI turns it on)."""
        super().__init__(
            server=server,
            token=token,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            max_in_flight=max_in_flight,
            catalog=catalog,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client()
        self._sleep = sleep
        self._slot = _slots.sync_slot(self._slot_key, self.max_in_flight)
        self._across = ProcessSlots(self._slot_key, self.max_in_flight) if process_lock else None

    def _request(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            try:
                across: AbstractContextManager[None] = (
                    self._across.hold() if self._across else nullcontext()
                )
                with self._slot, across, _network_errors():
                    response = self._http.send(self._build(self._http, call))
                return call.parse(_calls.envelope_of(response))
            except VoxmeterClientError as error:
                delay = self._retry_delay(call, attempt, error)
            self._sleep(delay)
            attempt += 1

    def usage(self, api: str, month: Month | None = None) -> list[UsageRow]:
        """One product's figure for `month` (default: the current month on the server)."""
        return self._request(_calls.usage(api, month, self._catalog))

    def usage_all(self, month: Month | None = None) -> list[UsageRow]:
        """Every catalog product: one `api=all` request, or a serial sweep where unsupported."""
        if self._all_supported is not False:
            try:
                rows = self._request(_calls.usage_all(month, self._catalog))
            except UnknownApiError:
                if self._all_supported:
                    raise
                self._all_supported = False
            else:
                self._all_supported = True
                return rows
        return [row for call in self._sweep_calls(month) for row in self._request(call)]

    def token_info(self) -> TokenInfo:
        """Today's quota and use (costs one request of quota, like every call)."""
        return self._request(_calls.token_info_call())

    def send_events(self, events: Iterable[Mapping[str, object]]) -> IngestResult:
        """Upload events in calls of at most 10,000; retried calls are safe (ids dedupe)."""
        accepted = duplicates = 0
        raw = []
        for batch in _calls.batches(events):
            got, dup, envelope = self._request(_calls.events(batch))
            accepted, duplicates = accepted + got, duplicates + dup
            raw.append(envelope.raw)
        return IngestResult(accepted, duplicates, len(raw), raw)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient(_BaseClient):
    """The asyncio client; same arguments and methods as `Client`, awaited."""

    def __init__(
        self,
        server: str | int,
        token: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_in_flight: int = 1,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        catalog: Catalog | None = None,
    ) -> None:
        super().__init__(
            server=server,
            token=token,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            max_in_flight=max_in_flight,
            catalog=catalog,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient()
        self._sleep = sleep
        self._slot = _slots.sync_slot(self._slot_key, self.max_in_flight)

    async def _request(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            try:
                async with _slots.held_async(self._slot):
                    with _network_errors():
                        response = await self._http.send(self._build(self._http, call))
                return call.parse(_calls.envelope_of(response))
            except VoxmeterClientError as error:
                delay = self._retry_delay(call, attempt, error)
            await self._sleep(delay)
            attempt += 1

    async def usage(self, api: str, month: Month | None = None) -> list[UsageRow]:
        """One product's figure for `month` (default: the current month on the server)."""
        return await self._request(_calls.usage(api, month, self._catalog))

    async def usage_all(self, month: Month | None = None) -> list[UsageRow]:
        """Every catalog product: one `api=all` request, or a serial sweep where unsupported."""
        if self._all_supported is not False:
            try:
                rows = await self._request(_calls.usage_all(month, self._catalog))
            except UnknownApiError:
                if self._all_supported:
                    raise
                self._all_supported = False
            else:
                self._all_supported = True
                return rows
        return [row for call in self._sweep_calls(month) for row in await self._request(call)]

    async def token_info(self) -> TokenInfo:
        """Today's quota and use (costs one request of quota, like every call)."""
        return await self._request(_calls.token_info_call())

    async def send_events(self, events: Iterable[Mapping[str, object]]) -> IngestResult:
        """Upload events in calls of at most 10,000; retried calls are safe (ids dedupe)."""
        accepted = duplicates = 0
        raw = []
        for batch in _calls.batches(events):
            got, dup, envelope = await self._request(_calls.events(batch))
            accepted, duplicates = accepted + got, duplicates + dup
            raw.append(envelope.raw)
        return IngestResult(accepted, duplicates, len(raw), raw)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
