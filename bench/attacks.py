"""Server memory under a client's worst uploads and query strings, with /healthz alongside.

Usage: python -m bench.attacks [--backend sqlite|postgres] [--src PATH] [--junk-reads 5000]
       [--json FILE]

Two attacks, each against a fresh server process on loopback:

* uploads: for each body shape, 8 uploads at once (4 tokens x 2 in-flight slots) of the
  largest body the limits allow (16 MiB): `[0,0,...]`, `[{},{},...]`, the same zeros after 2 MiB
  of blanks (past the early looks at a body's first MiB), 10,000 arrays of zeros (within the
  count, so scanned whole), NDJSON `ab` lines, and
  10,000 valid events padded with blanks. Measured: the server's peak RSS over its RSS before
  (VmHWM after resetting it through /proc/<pid>/clear_refs), and /healthz latency, polled
  every 10 ms while the uploads run. Targets: growth < 100 MB, /healthz p99 < 50 ms.
* junk reads: `billing.php?api=ivr_minutes&z=<60,000 random bytes>`, `--junk-reads` times on
  one keep-alive connection after 100 to warm up. Target: peak RSS growth < 20 MB.

`--src` runs the server from another source tree (e.g. a `git worktree` of an earlier commit,
on PYTHONPATH), for a before/after comparison on one machine. Each scenario is bounded in time
(`--seconds`). Prints a JSON document, then one human line per scenario.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import (
    Server,
    add_backend_option,
    cpu_note,
    fresh_db,
    fresh_postgres,
    make_tenant,
    write_json,
)

MIB = 1024 * 1024
LIMIT = 16 * MIB
UPLOADS = 8
TOKENS = 4


def _valid_padded() -> bytes:
    moment = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    tag = secrets.token_hex(4)
    events = [
        json.dumps({"id": f"{tag}-{i}", "product": "interactions", "time": moment}).encode()
        for i in range(10_000)
    ]
    pad = b" " * ((LIMIT - 2 - sum(len(e) + 1 for e in events)) // len(events))
    return b"[" + b",".join(pad + e for e in events) + b"]"


SHAPES = {
    "json [0,0,...]": (lambda: b"[" + b"0," * ((LIMIT - 3) // 2) + b"0]", "application/json"),
    "json [{},{},...]": (lambda: b"[" + b"{}," * ((LIMIT - 4) // 3) + b"{}]", "application/json"),
    "json 2 MiB of blanks, then [0,0,...]": (
        lambda: b"[" + b" " * (2 * MIB) + b"0," * ((LIMIT - 2 * MIB - 3) // 2) + b"0]",
        "application/json",
    ),
    "json 10,000 arrays of zeros": (
        lambda: (
            b"[" + b",".join([b"[" + b"0," * ((LIMIT // 10_000 - 4) // 2) + b"0]"] * 10_000) + b"]"
        ),
        "application/json",
    ),
    "ndjson ab lines": (lambda: b"ab\n" * (LIMIT // 3), "application/x-ndjson"),
    "10,000 valid events, padded": (_valid_padded, "application/json"),
}


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def reset_peak(pid: int) -> int:
    """Reset the peak (VmHWM) to the current RSS, in KiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return status_kib(pid, "VmRSS")


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def start(args: argparse.Namespace) -> Server:
    db = fresh_postgres() if args.backend == "postgres" else fresh_db()
    extra = ("--redis", "redis://127.0.0.1:6379/0") if db.startswith("postgres") else ()
    if db.startswith("postgres"):
        os.environ["VOXMETER_REDIS_PREFIX"] = f"vxbench-{secrets.token_hex(4)}"
    return Server(db, args=extra).start()


def post(base: str, token: str, body: bytes, content_type: str, timeout: float) -> int:
    request = urllib.request.Request(
        base + "/api/v2/events",
        data=body,
        headers={"wolkvox-token": token, "Content-Type": content_type},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def uploads(args: argparse.Namespace, shape: str) -> dict[str, object]:
    build, content_type = SHAPES[shape]
    server = start(args)
    try:
        tokens = make_tenant(server.db, tokens=TOKENS)
        bodies = [build() for _ in range(UPLOADS)]
        post(server.base, tokens[0], b"[]", "application/json", 30)  # warm up
        assert server.proc is not None
        pid = server.proc.pid
        before = reset_peak(pid)
        statuses: list[int] = []
        threads = [
            threading.Thread(
                target=lambda t=tokens[i // 2], b=body: statuses.append(
                    post(server.base, t, b, content_type, args.seconds)
                )
            )
            for i, body in enumerate(bodies)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        health: list[float] = []
        while any(t.is_alive() for t in threads) and time.monotonic() - started < args.seconds:
            asked = time.perf_counter()
            with urllib.request.urlopen(server.base + "/healthz", timeout=args.seconds) as reply:
                reply.read()
            health.append((time.perf_counter() - asked) * 1000)
            time.sleep(0.01)
        for thread in threads:
            thread.join(args.seconds)
        elapsed = time.monotonic() - started
        peak = status_kib(pid, "VmHWM")
        ordered = sorted(health)
        return {
            "scenario": f"uploads: {shape}",
            "body_bytes": len(bodies[0]),
            "statuses": sorted(statuses),
            "rss_before_mib": round(before / 1024, 1),
            "rss_growth_mib": round((peak - before) / 1024, 1),
            "healthz_samples": len(ordered),
            "healthz_p50_ms": round(statistics.median(ordered), 2) if ordered else None,
            "healthz_p99_ms": round(percentile(ordered, 99), 2) if ordered else None,
            "healthz_max_ms": round(ordered[-1], 2) if ordered else None,
            "seconds": round(elapsed, 2),
            "met": peak - before < 100 * 1000 and bool(ordered) and percentile(ordered, 99) < 50,
        }
    finally:
        server.stop()


def junk_reads(args: argparse.Namespace) -> dict[str, object]:
    server = start(args)
    try:
        (token,) = make_tenant(server.db)
        assert server.proc is not None
        pid = server.proc.pid
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=args.seconds)
        started = time.monotonic()

        def read() -> None:
            path = f"/api/v2/billing.php?api=ivr_minutes&z={secrets.token_hex(30_000)}"
            conn.request("GET", path, headers={"wolkvox-token": token})
            reply = conn.getresponse()
            reply.read()
            assert reply.status == 200, reply.status

        for _ in range(100):
            read()
        before = reset_peak(pid)
        done = 0
        while done < args.junk_reads and time.monotonic() - started < args.seconds:
            read()
            done += 1
        conn.close()
        peak = status_kib(pid, "VmHWM")
        after = status_kib(pid, "VmRSS")
        return {
            "scenario": "junk reads",
            "reads": done,
            "rss_before_mib": round(before / 1024, 1),
            "rss_growth_mib": round((peak - before) / 1024, 1),
            "rss_after_mib": round(after / 1024, 1),
            "seconds": round(time.monotonic() - started, 2),
            "met": done == args.junk_reads and peak - before < 20 * 1000,
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_backend_option(parser)
    parser.add_argument("--src", default=None, help="run the server from this source tree")
    parser.add_argument("--junk-reads", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=300.0, help="time limit per scenario")
    parser.add_argument("--only", choices=["uploads", "junk"], default=None)
    parser.add_argument("--shape", choices=list(SHAPES), default=None, help="one upload shape")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    if args.src:
        src = str(Path(args.src).resolve())
        paths = [src, os.environ.get("PYTHONPATH", "")]
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    results: list[dict[str, object]] = []
    if args.only in (None, "uploads"):
        results += [uploads(args, shape) for shape in SHAPES if args.shape in (None, shape)]
    if args.only in (None, "junk"):
        results.append(junk_reads(args))
    out = {"backend": args.backend, "src": args.src or "this tree", "results": results}
    print(json.dumps(out, indent=2))
    write_json(args.json, out)
    for r in results:
        if str(r["scenario"]).startswith("uploads"):
            print(
                f"{args.backend} {r['scenario']}: RSS +{r['rss_growth_mib']} MiB over "
                f"{r['rss_before_mib']}, /healthz p99 {r['healthz_p99_ms']} ms "
                f"(max {r['healthz_max_ms']}), replies {r['statuses']}, {r['seconds']} s",
                file=sys.stderr,
            )
        else:
            print(
                f"{args.backend} junk reads x{r['reads']}: RSS +{r['rss_growth_mib']} MiB over "
                f"{r['rss_before_mib']}, {r['seconds']} s",
                file=sys.stderr,
            )
    print(cpu_note(), file=sys.stderr)


if __name__ == "__main__":
    main()
