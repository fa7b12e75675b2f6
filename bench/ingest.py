"""Ingest throughput over HTTP into the embedded SQLite server.

Batches of 10,000 events, `--in-flight` requests at once (default 2, the per-token limit),
dedupe and aggregation on. Reports events/s per milestone of stored events, and the server's
peak RSS. Bounded by `--events` and `--seconds`.

    .venv/bin/python bench/ingest.py --ids sequential --events 10000000
    .venv/bin/python bench/ingest.py --ids uuid4 --events 10000000
    .venv/bin/python bench/ingest.py --backend postgres --events 3000000   # + Redis limits
"""

from __future__ import annotations

import argparse
import http.client
import os
import queue
import threading
import time

from common import RssSampler, Server, cpu_note, fresh_db, fresh_postgres, make_tenant

BATCH = 10_000
PRODUCTS = (b"ivr_minutes", b"rec_minutes", b"tts_chars", b"interactions")


def uuid4_ids(count: int) -> list[bytes]:
    """Random version-4 UUIDs in canonical form, made in bulk (uuid.uuid4() is slower)."""
    raw = bytearray(os.urandom(16 * count))
    out = []
    for i in range(count):
        b = raw[16 * i : 16 * i + 16]
        b[6] = (b[6] & 0x0F) | 0x40
        b[8] = (b[8] & 0x3F) | 0x80
        h = b.hex().encode()
        out.append(b"-".join((h[:8], h[8:12], h[12:16], h[16:20], h[20:])))
    return out


def body(batch_no: int, ids: str, day: int) -> bytes:
    """One batch as a JSON array; events spread over the products, all in one day."""
    if ids == "uuid4":
        keys = uuid4_ids(BATCH)
    else:
        keys = [b"evt-%014d" % (batch_no * BATCH + i) for i in range(BATCH)]
    stamp = b"2026-11-%02dT%02d:%02d:%02dZ"
    parts = []
    for i, key in enumerate(keys):
        product = PRODUCTS[i & 3]
        second = (batch_no * BATCH + i) % 86400
        when = stamp % (day, second // 3600, second // 60 % 60, second % 60)
        if product == b"interactions":
            parts.append(b'{"id":"%s","product":"%s","time":"%s"}' % (key, product, when))
        else:
            parts.append(
                b'{"id":"%s","product":"%s","time":"%s","quantity":"1.5"}' % (key, product, when)
            )
    return b"[" + b",".join(parts) + b"]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ids", choices=["sequential", "uuid4"], default="sequential")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--seconds", type=float, default=900.0)
    parser.add_argument("--in-flight", type=int, default=2)
    parser.add_argument("--milestone", type=int, default=1_000_000)
    parser.add_argument("--db", default=None, help="database URL (default: a fresh one)")
    parser.add_argument(
        "--backend",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="postgres: a fresh database on 127.0.0.1:5432 and limits in Redis on 127.0.0.1:6379",
    )
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

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
    while any(t.is_alive() for t in threads):
        time.sleep(0.2)
        with lock:
            done = sent
        if done - last_mark >= args.milestone:
            now = time.perf_counter()
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
    print(
        f"total: {sent:,} events in {elapsed:.1f} s = {sent / elapsed:,.0f} events/s; "
        f"peak server RSS {peak:.0f} MiB; database {db}"
    )


if __name__ == "__main__":
    main()
