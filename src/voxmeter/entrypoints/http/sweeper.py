"""The server's background sweeps of its mirrors (docs/mirrors.md, Sweeps).

Once a second the due mirrors are listed; each is swept in a task of its own, at most
`MAX_PARALLEL` at once, after its lease is taken (so among several processes exactly one
sweeps a mirror). Storage work runs on the background threads, upstream calls on the event
loop with a timeout per request: a hanging upstream stalls its own sweep only. A task of its
own checks the staleness alerts every `STALE_CHECK_SECONDS`, on the same threads.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time

import anyio
import httpx

from voxmeter.adapters import upstream
from voxmeter.domain.mirrors import Failure
from voxmeter.service.alerts import check_stale_alerts
from voxmeter.service.context import Context
from voxmeter.service.ports import AfterSweep, SecretSealing, Storage
from voxmeter.service.sweeps import (
    LeaseLost,
    begin_sweep,
    finish_sweep,
    lease_until,
    skip_sweep,
)

log = logging.getLogger("voxmeter.mirrors")

MAX_PARALLEL = 200
"""Sweeps in flight at once in one process (each is one upstream request at a time)."""
POLL_SECONDS = 1.0
RENEW_SECONDS = 10.0
STALE_CHECK_SECONDS = 5.0
"""How often the staleness alerts are checked (a mirror is stale after a minute at the least)."""
"""A held lease is renewed before a request when it was last renewed longer ago than this."""


def no_hook(operation_id: int, state: object, changed: bool) -> None:
    """The default after-sweep hook: nothing to do."""


def owner_id() -> str:
    """This process's name on the leases it holds."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Sweeper:
    """Runs the due sweeps of every mirror for one server process."""

    def __init__(
        self,
        ctx: Context[Storage],
        sealing: SecretSealing,
        threads: anyio.CapacityLimiter,
        after_sweep: AfterSweep = no_hook,
        transport: httpx.AsyncBaseTransport | None = None,
        max_parallel: int = MAX_PARALLEL,
        poll: float = POLL_SECONDS,
        stale_check: float = STALE_CHECK_SECONDS,
    ) -> None:
        self.ctx = ctx
        self.sealing = sealing
        self.threads = threads
        self.after_sweep = after_sweep
        self.transport = transport
        self.owner = owner_id()
        self.poll = poll
        self.stale_check = stale_check
        self.slots = anyio.Semaphore(max_parallel)
        self.max_parallel = max_parallel
        self.running: set[int] = set()

    async def run(self) -> None:
        """List the due mirrors and start their sweeps, until cancelled."""
        quiet_until = 0.0
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self.watch_stale)
            while True:
                try:
                    due = await anyio.to_thread.run_sync(
                        self.ctx.storage.due_mirrors,
                        self.ctx.clock(),
                        self.max_parallel,
                        limiter=self.threads,
                    )
                except Exception as exc:
                    if time.monotonic() >= quiet_until:
                        log.warning("could not list due mirrors: %s; will retry", exc)
                        quiet_until = time.monotonic() + 10
                    due = []
                for operation_id in due:
                    if operation_id not in self.running:
                        self.running.add(operation_id)
                        tasks.start_soon(self._guarded, operation_id)
                await anyio.sleep(self.poll)

    async def watch_stale(self) -> None:
        """Fire the staleness alerts of mirrors gone stale, every `stale_check` seconds, until
        cancelled (a failed check is logged, at most once in 10 seconds, and tried again)."""
        quiet_until = 0.0
        while True:
            try:
                fired = await anyio.to_thread.run_sync(
                    check_stale_alerts, self.ctx, limiter=self.threads
                )
            except Exception as exc:
                if time.monotonic() >= quiet_until:
                    log.warning("could not check the staleness alerts: %s; will retry", exc)
                    quiet_until = time.monotonic() + 10
                fired = []
            for alert_id, name in fired:
                log.warning("mirror %s is stale: alert %d fired", name, alert_id)
            await anyio.sleep(self.stale_check)

    async def _guarded(self, operation_id: int) -> None:
        try:
            async with self.slots:
                await self.sweep(operation_id)
        except Exception:
            log.exception("mirror %d: sweep failed; will retry", operation_id)
        finally:
            self.running.discard(operation_id)

    async def sweep(self, operation_id: int) -> None:
        """One sweep of one mirror, if it is still due and no other process holds it."""
        ctx, owner = self.ctx, self.owner
        job = await anyio.to_thread.run_sync(
            begin_sweep, ctx, self.sealing, operation_id, owner, limiter=self.threads
        )
        if job is None:
            return
        name = f"{job.operation.name} ({job.operation.server})"
        try:
            if not job.affordable:
                await anyio.to_thread.run_sync(skip_sweep, ctx, job, owner, limiter=self.threads)
                log.info("mirror %s: daily budget spent; next sweep tomorrow", name)
                return
            renewed = time.monotonic()

            async def renew() -> bool:
                nonlocal renewed
                if time.monotonic() - renewed < RENEW_SECONDS:
                    return True
                renewed = time.monotonic()
                return await anyio.to_thread.run_sync(
                    ctx.storage.renew_lease,
                    operation_id,
                    owner,
                    lease_until(ctx.clock()),
                    limiter=self.threads,
                )

            outcome = await upstream.fetch(job, ctx.catalog, renew, self.transport)
            state, changed = await anyio.to_thread.run_sync(
                finish_sweep, ctx, job, outcome, owner, limiter=self.threads
            )
        except LeaseLost:
            log.warning("mirror %s: lease lost to another process; its sweep stored nothing", name)
            return
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(
                    ctx.storage.release_lease, operation_id, owner, limiter=self.threads
                )
            raise
        if outcome.failure is None:
            log.info(
                "mirror %s: swept, %d requests, %d figures", name, outcome.spent, len(outcome.rows)
            )
        elif outcome.failure is Failure.INVALID_TOKEN:
            log.error("mirror %s: the upstream refused its token; retrying in a day", name)
        else:
            log.warning("mirror %s: sweep failed (%s): %s", name, outcome.failure, outcome.error)
        try:
            self.after_sweep(operation_id, state, changed)
        except Exception:
            log.exception("mirror %s: after-sweep hook failed", name)
