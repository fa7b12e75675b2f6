"""The background sender of alert deliveries, one per server process.

It looks for due deliveries every `delivery_poll` seconds (one indexed read, skipped on an
embedded database while nothing was committed and nothing is due yet), claims a few with
a lease (so senders of several processes never send one delivery at once), and sends each as a
task of its own, at most `CONCURRENCY` at a time: a receiver that hangs holds one slot for the
10 s timeout, never ingest and never the other deliveries. The deployment's secret box is
opened at the first delivery, so a server that sends none needs no key."""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Hashable

import anyio
import httpx

from voxmeter.adapters import webhooks
from voxmeter.adapters.secret_box import open_secret_box
from voxmeter.config import Settings
from voxmeter.entrypoints.http import metrics
from voxmeter.errors import ConfigError
from voxmeter.service import alerts
from voxmeter.service.context import Context
from voxmeter.service.ports import Claimed, SecretSealing, Storage

log = logging.getLogger("voxmeter.deliveries")

CONCURRENCY = 16
"""Deliveries in flight per process at most."""


def policy_of(settings: Settings) -> alerts.DeliveryPolicy:
    return alerts.DeliveryPolicy(
        base_delay=settings.delivery_base_delay, retry_for=settings.delivery_retry_for
    )


class Sender:
    """Claims and sends due deliveries until cancelled."""

    def __init__(
        self,
        ctx: Context[Storage],
        settings: Settings,
        failed: Callable[[Exception], None],
        version: Callable[[], Hashable] | None = None,
    ) -> None:
        self.ctx = ctx
        self.version = version
        """The storage's version, when reading it on the event loop is cheap (an embedded
        database): while it stays the same, no delivery was added or changed anywhere."""
        self.seen: tuple[Hashable, int | None] | None = None
        """The version of the last look and the next due time it found."""
        self.settings = settings
        self.policy = policy_of(settings)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.failed = failed
        self.slots = anyio.Semaphore(CONCURRENCY)
        self.threads = anyio.CapacityLimiter(2)
        self.box: SecretSealing | None = None
        self.random = random.SystemRandom()
        self.quiet_until = 0.0

    async def run(self) -> None:
        async with webhooks.client(self.policy.timeout) as http, anyio.create_task_group() as tg:
            while True:
                try:
                    await self._round(http, tg)
                except Exception as exc:
                    self.failed(exc)
                await anyio.sleep(self.settings.delivery_poll)

    async def _round(self, http: httpx.AsyncClient, tg: anyio.abc.TaskGroup) -> None:
        now = self.ctx.clock()
        version = self.version() if self.version is not None else None
        if self.seen is not None and self.seen[0] == version and version is not None:
            known = self.seen[1]
            if known is None or known > now:
                return  # nothing committed since the last look, and nothing due yet
        due = await anyio.to_thread.run_sync(self.ctx.storage.next_due, limiter=self.threads)
        self.seen = (version, due)  # the version read before the look: never newer than it
        now = self.ctx.clock()
        if due is None or due > now:
            return
        free = self.slots.value
        if free == 0:
            return
        if self.box is None and not await anyio.to_thread.run_sync(
            self._box_ready, limiter=self.threads
        ):
            return
        lease = now + int(self.policy.lease * 1_000_000)
        claimed = await anyio.to_thread.run_sync(
            self.ctx.storage.claim_due, self.owner, now, lease, free, limiter=self.threads
        )
        for delivery in claimed:
            await self.slots.acquire()
            tg.start_soon(self._send, http, delivery)

    def _box_ready(self) -> bool:
        """Open the secret box once (reading, or making, the key file: in a thread); without a
        key, say so once a minute and send nothing (the deliveries wait, pending)."""
        if self.box is not None:
            return True
        try:
            self.box = open_secret_box(self.settings.database_url, self.settings.secret_key)
        except ConfigError as exc:
            now = time.monotonic()
            if now >= self.quiet_until:
                self.quiet_until = now + 60.0
                log.warning("alert deliveries wait: %s", exc)
            return False
        return True

    async def _send(self, http: httpx.AsyncClient, delivery: Claimed) -> None:
        try:
            assert self.box is not None
            now = self.ctx.clock()
            headers = alerts.signed_headers(self.box, delivery, now // 1_000_000)
            attempt = await webhooks.post(http, delivery.url, delivery.body, headers, now)
            result = alerts.outcome(self.policy, delivery, attempt, self.random.random())
            await anyio.to_thread.run_sync(
                alerts.finish, self.ctx, self.owner, delivery, attempt, result, limiter=self.threads
            )
            label = "retry" if result.state == "pending" else result.state
            metrics.DELIVERIES.labels(label).inc()
        except Exception as exc:  # the lease runs out and another round tries again
            self.failed(exc)
        finally:
            self.slots.release()
