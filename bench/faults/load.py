"""The load: two senders and a dashboard-like reader, retrying as real clients do."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlencode

from bench.faults.events import CLIENT_TIMEOUT, Batch
from bench.faults.run import Run
from bench.faults.wire import Reply, call, stamp


def send_loop(run: Run, token: str, stop: threading.Event, rng: random.Random) -> None:
    """A client sending batches back to back, honouring Retry-After like a real one: a batch
    refused by the concurrency limit is sent again; any other failure leaves it unknown."""
    pending: Batch | None = None
    while not stop.is_set():
        batch = pending or run.new_batch(rng)
        pending = None
        if batch is None:
            return
        body = batch.body(run.base)
        reply = run.record("ingest", "W", call(run.port, "POST", "/api/v2/events", token, body))
        hint = reply.retry_after or ""
        wait = float(hint) if hint.isdigit() else 0.5
        if reply.status == 200:
            run.acknowledge(batch, reply)
            continue
        if reply.refused:
            run.drop()
        elif reply.busy:
            pending = batch
        else:
            run.lose(batch, reply.describe())
        stop.wait(min(wait, 2.0))
    if pending is not None:
        run.lose(pending, "403 busy, not sent again before the round ended")


def read_loop(run: Run, token: str, stop: threading.Event) -> None:
    """A dashboard-like reader: billing, token_info, a small listing, and /healthz in turn."""
    month = run.base.strftime("%Y-%m")
    window = urlencode({"date_ini": stamp(run.base_epoch), "date_end": stamp(run.base_epoch)})
    paths: list[tuple[str, str, str | None]] = [
        ("read", f"/api/v2/billing.php?api=ivr_minutes&month={month}", token),
        ("read", "/api/v2/information.php?api=token_info", token),
        ("read", f"/api/v2/events?{window}&limit=10", token),
        ("health", "/healthz", None),
    ]
    turn = 0
    while not stop.is_set():
        kind, path, tok = paths[turn % len(paths)]
        turn += 1
        run.record(
            kind, "R" if tok else "-", call(run.port, "GET", path, tok, timeout=CLIENT_TIMEOUT)
        )
        stop.wait(0.02)


@contextlib.contextmanager
def load(run: Run, writer: str, reader: str | None, seed: int) -> Iterator[threading.Event]:
    """Two senders (and optionally a reader) until the block ends."""
    stop = threading.Event()
    threads = [
        threading.Thread(target=send_loop, args=(run, writer, stop, random.Random(seed * 10 + i)))
        for i in range(2)
    ]
    if reader is not None:
        threads.append(threading.Thread(target=read_loop, args=(run, reader, stop)))
    for thread in threads:
        thread.start()
    try:
        yield stop
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=CLIENT_TIMEOUT + 10)


def until_ok(
    run: Run,
    kind: str,
    who: str,
    method: str,
    path: str,
    token: str,
    body: bytes | None = None,
    seconds: float = 60.0,
) -> Reply:
    """Retry transient refusals (503, busy, no reply) like a client would, within a bound."""
    deadline = time.monotonic() + seconds
    while True:
        reply = run.record(kind, who, call(run.port, method, path, token, body))
        if reply.status == 200:
            return reply
        transient = reply.status in (0, 503) or reply.busy
        if not transient or time.monotonic() > deadline:
            raise RuntimeError(f"{method} {path.split('?')[0]}: {reply.describe()}")
        time.sleep(0.2)
