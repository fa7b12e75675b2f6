"""Admission overhead of the Redis limiter: admit alone, and admit + release, against a real Redis.

Usage: python -m bench.redis_admission [--url redis://127.0.0.1:6379/0] [--count 20000]
       [--seconds 20] [--tokens 8]

Runs one client thread (the latency a request sees, not the server's throughput), under a
prefix of its own whose keys are deleted afterwards. Target: p99 of admit <= 1 ms.
Prints a JSON document, then a human line.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import time

import redis

from bench.common import cpu_note, write_json
from voxmeter.adapters.redis_limits import RedisLimiter

DAY = "2026-05-15"


def percentile(sorted_ns: list[int], q: float) -> float:
    """The q-th percentile (0..100) in ms, nearest rank."""
    index = min(len(sorted_ns) - 1, max(0, round(q / 100 * len(sorted_ns)) - 1))
    return sorted_ns[index] / 1e6


def summary(samples: list[int]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(percentile(ordered, 50), 4),
        "p99_ms": round(percentile(ordered, 99), 4),
        "max_ms": round(ordered[-1] / 1e6, 4),
        "mean_ms": round(statistics.fmean(ordered) / 1e6, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--count", type=int, default=20_000, help="admissions at most")
    parser.add_argument("--seconds", type=float, default=20.0, help="time limit")
    parser.add_argument("--tokens", type=int, default=8, help="tokens admitted in turn")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    prefix = f"vxbench-{secrets.token_hex(5)}"
    limiter = RedisLimiter(args.url, prefix=prefix, deployment=secrets.token_hex(16))
    tokens = [f"token{i}" for i in range(args.tokens)]
    admit_ns: list[int] = []
    both_ns: list[int] = []
    clock = time.perf_counter_ns
    try:
        for token in tokens:  # warm up: connection, script load
            limiter.release(token, limiter.admit(token, 1, DAY, 2, 10**9).lease)
        deadline = time.monotonic() + args.seconds
        for i in range(args.count):
            token = tokens[i % len(tokens)]
            t0 = clock()
            admission = limiter.admit(token, 1, DAY, 2, 10**9)
            t1 = clock()
            limiter.release(token, admission.lease)
            t2 = clock()
            assert admission.outcome == "ok", admission
            admit_ns.append(t1 - t0)
            both_ns.append(t2 - t0)
            if i % 256 == 0 and time.monotonic() > deadline:
                break
    finally:
        limiter.close()
        client = redis.Redis.from_url(args.url)
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()

    admit = summary(admit_ns)
    both = summary(both_ns)
    result = {
        "bench": "redis_admission",
        "admissions": len(admit_ns),
        "tokens": len(tokens),
        "admit": admit,
        "admit_release": both,
        "target_admit_p99_ms": 1.0,
        "meets_target": admit["p99_ms"] <= 1.0,
        "machine": cpu_note(),
    }
    print(json.dumps(result, indent=2))
    write_json(args.json, result)
    print(
        f"redis admission: {len(admit_ns)} admissions, admit p50 {admit['p50_ms']:.3f} ms"
        f" p99 {admit['p99_ms']:.3f} ms; admit+release p50 {both['p50_ms']:.3f} ms"
        f" p99 {both['p99_ms']:.3f} ms (target admit p99 <= 1 ms:"
        f" {'met' if result['meets_target'] else 'MISSED'}; {cpu_note()})"
    )


if __name__ == "__main__":
    main()
