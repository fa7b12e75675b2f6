"""/healthz while Redis is paused: a request that waits on Redis must hold up no other.

Starts a private `redis-server` (so pausing it disturbs nobody), a fresh PostgreSQL database and
a scaled-out server on both; keeps billing.php busy from several clients, pauses Redis with
`CLIENT PAUSE <ms> ALL` and times /healthz (one request every 10 ms) while it is paused.
Requires `redis-server` and `redis-cli` on the PATH and PostgreSQL on 127.0.0.1:5432.

    .venv/bin/python -m bench.stall --pause-ms 3000
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

from bench.common import Server, cpu_note, free_port, fresh_postgres, make_tenant, write_json


def start_redis() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        cwd=tempfile.mkdtemp(prefix="voxmeter-bench-redis-"),
    )
    deadline = time.monotonic() + 10
    while subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True).returncode:
        if time.monotonic() > deadline:
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)
    return proc, port


def get(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"wolkvox-token": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            reply.read()
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def percentile(sorted_ms: list[float], pct: float) -> float:
    return sorted_ms[max(0, int(len(sorted_ms) * pct / 100 + 0.5) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pause-ms", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=4, help="billing.php clients")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    redis, port = start_redis()
    db = fresh_postgres()
    tokens = make_tenant(db, tokens=args.clients)
    server = Server(db, args=("--redis", f"redis://127.0.0.1:{port}/0")).start()
    billing = server.base + "/api/v2/billing.php?api=all"
    statuses: Counter[int] = Counter()
    stop = threading.Event()
    paused = threading.Event()

    def client(token: str) -> None:
        while not stop.is_set():
            status = get(billing, token)
            if paused.is_set():
                statuses[status] += 1

    threads = [threading.Thread(target=client, args=(t,)) for t in tokens]
    try:
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        subprocess.run(
            ["redis-cli", "-p", str(port), "CLIENT", "PAUSE", str(args.pause_ms), "ALL"],
            check=True,
            capture_output=True,
        )
        paused.set()
        times: list[float] = []
        end = time.monotonic() + args.pause_ms / 1000 - 0.1
        while time.monotonic() < end:
            started = time.perf_counter()
            assert get(server.base + "/healthz") == 200
            times.append((time.perf_counter() - started) * 1000)
            time.sleep(0.01)
        paused.clear()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        server.stop()
        redis.terminate()
        redis.wait()
    times.sort()
    result = {
        "pause_ms": args.pause_ms,
        "healthz_requests": len(times),
        "healthz_p50_ms": round(percentile(times, 50), 2),
        "healthz_p99_ms": round(percentile(times, 99), 2),
        "healthz_max_ms": round(times[-1], 2),
        "billing_statuses_during_pause": dict(statuses),
    }
    print(f"{cpu_note()}; Redis paused {args.pause_ms} ms, {args.clients} billing.php clients")
    for name, value in result.items():
        print(f"  {name}: {value}")
    write_json(args.json, result)


if __name__ == "__main__":
    main()
