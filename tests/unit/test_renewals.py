"""Background re-reads of admission's in-memory entries (entrypoints/http/renewals.py) and the
maintenance switch's life."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.fakes import MemoryDatabase
from voxmeter.entrypoints.http.renewals import GAP, Renewals
from voxmeter.entrypoints.http.state import MaintenanceFlag
from voxmeter.service.context import Context
from voxmeter.service.maintenance import MAINTENANCE


class Gate:
    """Re-reads that record themselves and wait until released."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.threads: set[str] = set()
        self.release = threading.Event()

    def token(self, secret: str) -> None:
        self.calls.append(secret)
        self.threads.add(threading.current_thread().name)
        self.release.wait(5)

    def maintenance(self) -> None:
        self.token("maintenance")


async def settled(renewals: Renewals) -> None:
    for _ in range(300):
        await asyncio.sleep(0.01)
        if not renewals.pending():
            return
    raise AssertionError("the re-reads did not finish")


def test_entries_asked_for_while_a_batch_runs_go_once_into_the_next() -> None:
    async def scenario() -> Gate:
        gate = Gate()
        renewals = Renewals(gate.token, gate.maintenance)
        try:
            renewals.token("a")  # the first batch: a alone, held at the gate
            await asyncio.sleep(0.05)
            for _ in range(5):
                renewals.token("a")  # being re-read: not asked again
                renewals.token("b")
                renewals.maintenance()
                await asyncio.sleep(0.01)
            assert gate.calls == ["a"]
            assert renewals.pending() == 3
            gate.release.set()
            await settled(renewals)
            renewals.token("a")  # done with: may be asked again
            await settled(renewals)
        finally:
            renewals.close()
        return gate

    gate = asyncio.run(scenario())
    assert gate.calls[0] == "a"
    assert sorted(gate.calls[1:3]) == ["b", "maintenance"]
    assert gate.calls[3:] == ["a"]
    assert gate.threads == {"voxmeter-renew_0"}  # one thread of their own


def test_a_failed_re_read_is_forgotten_and_tried_again_next_time() -> None:
    tries: list[str] = []

    def failing(secret: str) -> None:
        tries.append(secret)
        raise ConnectionError("database unreachable")

    async def scenario() -> None:
        renewals = Renewals(failing, lambda: None)
        try:
            renewals.token("a")
            await settled(renewals)
            renewals.token("a")
            await settled(renewals)
        finally:
            renewals.close()

    asyncio.run(scenario())
    assert tries == ["a", "a"]


def test_off_the_event_loop_nothing_is_scheduled() -> None:
    tries: list[str] = []
    renewals = Renewals(tries.append, lambda: None)
    renewals.token("a")
    assert tries == []
    assert renewals.pending() == 0


@pytest.mark.parametrize("stored", ["on", "off"])
def test_the_maintenance_switch_is_renewed_past_half_its_life_and_never_outlives_it(
    ctx: Context[MemoryDatabase], stored: str
) -> None:
    now = [10.0]
    flag = MaintenanceFlag(ctx, ttl=1.0, clock=lambda: now[0])
    renewed: list[bool] = []
    assert not flag.known(lambda: renewed.append(True))  # never read
    assert flag.on() is False
    with ctx.storage.write() as tx:
        tx.set_setting(MAINTENANCE, stored)
    now[0] += 0.4
    assert flag.known(lambda: renewed.append(True))
    assert renewed == []
    assert flag.on() is False  # still the value read, within its life
    now[0] += 0.2
    assert flag.known(lambda: renewed.append(True))
    assert renewed == [True]
    flag.refresh()
    assert flag.on() is (stored == "on")  # the re-read's value, for a full life from now
    now[0] += 0.99
    assert flag.known()
    now[0] += 0.02
    assert not flag.known(lambda: renewed.append(True))
    assert renewed == [True]


def test_nothing_is_taken_once_closed() -> None:
    tries: list[str] = []

    async def scenario() -> None:
        renewals = Renewals(tries.append, lambda: None)
        renewals.close()
        renewals.token("a")
        renewals.maintenance()
        await asyncio.sleep(0.05)
        assert renewals.pending() == 0

    asyncio.run(scenario())
    assert tries == []


def test_on_the_loop_a_batch_runs_after_the_request_that_asked_and_spaced_by_the_gap() -> None:
    """Local reads (SQLite): re-read on the event loop's own thread, never inside the request
    that noticed the entry, still in batches at most one per GAP."""
    calls: list[tuple[str, str, float]] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        def token(secret: str) -> None:
            calls.append((secret, threading.current_thread().name, loop.time()))

        renewals = Renewals(token, lambda: token("maintenance"), on_loop=True)
        try:
            renewals.token("a")
            assert calls == []  # not within the asking request
            await settled(renewals)
            renewals.token("b")
            renewals.maintenance()
            renewals.token("b")
            await settled(renewals)
        finally:
            renewals.close()

    asyncio.run(scenario())
    assert [c[0] for c in calls[:1]] == ["a"]
    assert sorted(c[0] for c in calls[1:]) == ["b", "maintenance"]
    assert {c[1] for c in calls} == {threading.main_thread().name}
    assert calls[1][2] - calls[0][2] >= GAP * 0.99


def test_closed_on_the_loop_a_scheduled_batch_does_not_run() -> None:
    tries: list[str] = []

    async def scenario() -> None:
        renewals = Renewals(tries.append, lambda: None, on_loop=True)
        renewals.token("a")
        renewals.close()
        await asyncio.sleep(0.05)
        assert renewals.pending() == 0

    asyncio.run(scenario())
    assert tries == []
