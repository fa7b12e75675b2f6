"""Ingest throughput over HTTP into the embedded SQLite server.

Batches of 10,000 events, `--in-flight` requests at once (default 2, the per-token limit),
dedupe and aggregation on. Reports events/s per milestone of stored events, and the server's
peak RSS. Bounded by `--events` and `--seconds`.

    .venv/bin/python -m bench.ingest --ids sequential --events 10000000
    .venv/bin/python -m bench.ingest --ids uuid4 --events 10000000
    .venv/bin/python -m bench.ingest --backend postgres --events 3000000   # + Redis limits
"""

from __future__ import annotations

import argparse
import http.client
import os
import queue
import sys
import threading
import time

from bench.common import (
    RssSampler,
    Server,
    add_backend_option,
    cpu_note,
    fresh_db,
    fresh_postgres,
    make_tenant,
    write_json,
)

BATCH = 10_000
PRODUCTS = (b"ivr_minutes", b"rec_minutes", b"tts_chars", b"interactions")


_VARIANT = {c: b"89ab"[int(chr(c), 16) & 3 :][:1] for c in b"0123456789abcdef"}


def uuid4_ids(count: int) -> list[bytes]:
    """Random version-4 UUIDs in canonical form, made in bulk (uuid.uuid4() is slower)."""
    h = os.urandom(16 * count).hex().encode()
    return [
        b"%s-%s-4%s-%s%s-%s"
        % (
            h[i : i + 8],
            h[i + 8 : i + 12],
            h[i + 13 : i + 16],
            _VARIANT[h[i + 16]],
            h[i + 17 : i + 20],
            h[i + 20 : i + 32],
        )
        for i in range(0, 32 * count, 32)
    ]


def _template() -> bytes:
    """A batch with `%s` for every id and time; events spread over the products."""
    parts = []
    for i in range(BATCH):
        product = PRODUCTS[i & 3]
        quantity = b"" if product == b"interactions" else b',"quantity":"1.5"'
        parts.append(b'{"id":"%%s","product":"%s","time":"%%s"%s}' % (product, quantity))
    return b"[" + b",".join(parts) + b"]"


_TEMPLATE = _template()
_CLOCK = [b"%02d:%02d:%02d" % (s // 3600, s // 60 % 60, s % 60) for s in range(86400)]


def body(batch_no: int, ids: str, day: int) -> bytes:
    """One batch as a JSON array, all in one day. Filled into a template in one formatting
    call, so the load generator spends ~5 ms of CPU per batch and leaves the cores to the server.
    """
    first = batch_no * BATCH
    if ids == "uuid4":
        keys = uuid4_ids(BATCH)
    else:
        keys = [b"evt-%014d" % k for k in range(first, first + BATCH)]
    date = b"2026-11-%02dT" % day
    values: list[bytes] = []
    for i, key in enumerate(keys):
        values.append(key)
        values.append(date + _CLOCK[(first + i) % 86400] + b"Z")
    return _TEMPLATE % tuple(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ids", choices=["sequential", "uuid4"], default="sequential")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--seconds", type=float, default=900.0)
    parser.add_argument("--in-flight", type=int, default=2)
    parser.add_argument("--milestone", type=int, default=1_000_000)
    parser.add_argument("--db", default=None, help="database URL (default: a fresh one)")
    add_backend_option(parser)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    # The producer thread formats bodies while the senders wait on their replies: a sender must
    # get the GIL back as soon as its reply arrives, not after the default 5 ms.
    sys.setswitchinterval(0.0002)

    db = args.db or (fresh_postgres() if args.backend == "postgres" else fresh_db())
    extra: tuple[str, ...] = ("--workers", str(args.workers))
    if db.startswith("postgresql"):
        extra += ("--redis", "redis://127.0.0.1:6379/0")
    token = make_tenant(db)[0]
    server = Server(db, args=extra).start()
    sampler = RssSampler(server)
    sampler.start()
    lock = threading.Lock()
    sent = 0
    errors: list[str] = []
    deadline = time.monotonic() + args.seconds
    batches = args.events // BATCH

    ready: queue.Queue[bytes | None] = queue.Queue(maxsize=2 * args.in_flight)

    def producer() -> None:
        """Bodies are made ahead of time so the senders always have the next one ready."""
        for n in range(batches):
            if time.monotonic() >= deadline or errors:
                break
            ready.put(body(n, args.ids, 1 + (n * BATCH // 500_000) % 21))
        for _ in range(args.in_flight):
            ready.put(None)

    def worker() -> None:
        nonlocal sent
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        while (payload := ready.get()) is not None:
            if time.monotonic() >= deadline or errors:
                return
            conn.request(
                "POST",
                "/api/v2/events",
                payload,
                {"wolkvox-token": token, "Content-Type": "application/json"},
            )
            reply = conn.getresponse()
            text = reply.read()
            if reply.status != 200:
                errors.append(f"{reply.status} {text[:200]!r}")
                return
            with lock:
                sent += BATCH

    threading.Thread(target=producer, daemon=True).start()
    threads = [threading.Thread(target=worker) for _ in range(args.in_flight)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    print(
        f"ingest bench: {db.split(':', 1)[0]}, {args.workers} worker(s), ids={args.ids}, "
        f"batches of {BATCH}, {args.in_flight} in flight, "
        f"{cpu_note()}"
    )
    print(f"{'stored':>12} {'window ev/s':>12} {'overall ev/s':>13} {'rss MiB':>8}")
    last_mark, last_time = 0, start
    windows: list[dict[str, float]] = []
    while any(t.is_alive() for t in threads):
        time.sleep(0.2)
        with lock:
            done = sent
        if done - last_mark >= args.milestone:
            now = time.perf_counter()
            windows.append({"stored": done, "window_eps": (done - last_mark) / (now - last_time)})
            print(
                f"{done:>12,} {(done - last_mark) / (now - last_time):>12,.0f} "
                f"{done / (now - start):>13,.0f} {server.rss_mib():>8.0f}",
                flush=True,
            )
            last_mark, last_time = done, now
    elapsed = time.perf_counter() - start
    peak = sampler.stop()
    server.stop()
    if errors:
        raise SystemExit(f"error: {errors[0]}")
    write_json(
        args.json,
        {
            "bench": "ingest",
            "backend": db.split(":", 1)[0],
            "workers": args.workers,
            "ids": args.ids,
            "events": sent,
            "seconds": elapsed,
            "events_per_s": sent / elapsed,
            "last_window_eps": windows[-1]["window_eps"] if windows else sent / elapsed,
            "windows": windows,
            "peak_rss_mib": peak,
            "database": db,
        },
    )
    print(
        f"total: {sent:,} events in {elapsed:.1f} s = {sent / elapsed:,.0f} events/s; "
        f"peak server RSS {peak:.0f} MiB; database {db}"
    )


if __name__ == "__main__":
    main()
