"""The scenarios: kill -9 of the server, Redis and PostgreSQL outages."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from bench.common import fresh_db, make_tenant
from bench.faults.checks import Verdict, check_figures, resolve_unknown, verify
from bench.faults.events import (
    ADMITTED,
    CLIENT_TIMEOUT,
    COUNTS_AT_RISK,
    FLUSH_SETTLE,
    HANG_BOUND,
    RECOVERY_BOUND,
    event_spec,
)
from bench.faults.load import load, until_ok
from bench.faults.results import Result, _status_key, base_time
from bench.faults.run import Run
from bench.faults.services import Environment
from bench.faults.wire import Reply, call

# --- scenarios ------------------------------------------------------------------------------


@dataclass
class Options:
    rounds: int
    seed: int
    down: float
    max_seconds: float


def wait_admitted(run: Run, token: str, who: str) -> float:
    """Seconds until a read on `token` is admitted (after a kill -9 the dead processes' slots
    stay taken until their leases expire, as the README says)."""
    started = time.monotonic()
    deadline = started + RECOVERY_BOUND
    month = run.base.strftime("%Y-%m")
    while True:
        reply = run.record(
            "read",
            who,
            call(run.port, "GET", f"/api/v2/billing.php?api=rsync&month={month}", token),
        )
        if reply.status == 200:
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"not admitted {RECOVERY_BOUND:.0f} s after restart: {reply.describe()}"
            )
        time.sleep(0.1)


def kill_scenario(name: str, env: Environment, opts: Options) -> Result:
    """Repeated kill -9 of the whole server during sustained ingest; restart on the same data."""
    scaled = name == "pg-kill"
    result = Result(name, "PostgreSQL + Redis, 2 workers" if scaled else "SQLite, embedded")
    started = time.monotonic()
    if scaled:
        db = env.postgres().create_database("faults_kill")
        args: tuple[str, ...] = ("--redis", env.redis().url, "--workers", "2")
        extra_env = {"VOXMETER_REDIS_PREFIX": "faults-kill"}
    else:
        db = fresh_db(str(env.root / "sqlite"))
        args, extra_env = (), {}
    writer, reader = make_tenant(db, "faults", tokens=2)
    server = env.server(db, name, args, extra_env)
    base, room = base_time()
    run = Run(server.port, base, room)
    rng = random.Random(opts.seed)
    try:
        for round_ in range(opts.rounds + 1):
            booted = server.start()
            admitted = wait_admitted(run, writer, "W")
            if round_:
                result.restart_s.append(round(booted, 3))
                result.recovery_s.append(round(booted + admitted, 3))
            resolve_unknown(run, writer, reader)
            check_figures(run, reader)
            last = round_ == opts.rounds or time.monotonic() - started > opts.max_seconds
            if last:
                break
            with load(run, writer, None, opts.seed + round_):
                time.sleep(rng.uniform(0.3, 4.0))
                server.kill9()
            result.rounds += 1
        verdict = verify(run, reader)
        code = server.stop()
        if code != 0:
            run.problem(f"graceful stop exited {code}")
    except RuntimeError as exc:
        run.problem(str(exc))
        verdict = Verdict()
    result.server_tracebacks = server.tracebacks()
    if result.rounds < opts.rounds:
        run.problem(f"only {result.rounds} of {opts.rounds} rounds within {opts.max_seconds:.0f} s")
    _unexpected(run, busy_ok=scaled)
    result.finish(run, verdict)
    result.seconds = round(time.monotonic() - started, 1)
    return result


def _unexpected(
    run: Run, windows: list[tuple[float, float]] | None = None, busy_ok: bool = False
) -> None:
    """Outside the fault windows every reply is a 200 (never a 500), but for the slots of killed
    processes that stay taken until their leases expire, when `busy_ok`."""
    with run.lock:
        samples = list(run.samples)
    for sample in samples:
        if any(s <= sample.ended and sample.started <= e for s, e in windows or []):
            continue
        if sample.status in (0, 200) or sample.kind in ("limits", "quota"):
            continue  # no reply: the kill itself, resolved above; limits are checked on their own
        if busy_ok and sample.status == 403 and "SIMULTANEOUS" in sample.detail:
            continue
        run.problem(f"{sample.kind} got {sample.detail} outside any fault")
        return


def outage_checks(run: Run, result: Result) -> None:
    """While a component was down: only proper 503s or successes, healthz up, no hang."""
    during: Counter[str] = Counter()
    worst = 0.0
    for down, up in run.outages:
        for sample in run.samples_between(down, up):
            during[_status_key(sample)] += 1
            worst = max(worst, sample.ended - sample.started)
            if sample.kind == "health":
                if sample.status != 200:
                    run.problem(f"/healthz answered {sample.detail} during the outage")
            elif sample.status == 503:
                if not sample.unavailable_ok:
                    run.problem(f"a 503 without the envelope or Retry-After: {sample.detail}")
            elif sample.status != 200:
                run.problem(f"{sample.kind} got {sample.detail} during the outage")
            if sample.ended - sample.started > HANG_BOUND:
                run.problem(
                    f"{sample.kind} took {sample.ended - sample.started:.1f} s during the outage"
                )
    result.responses_during_faults = dict(during)
    result.max_latency_during_fault_s = round(worst, 3)


def wait_recovered(run: Run, since: float) -> float:
    """Seconds from `since` until both an ingest and a read succeeded, started after it."""
    deadline = since + RECOVERY_BOUND
    while time.monotonic() < deadline:
        done: dict[str, float] = {}
        with run.lock:
            for sample in run.samples:
                if (
                    sample.started >= since
                    and sample.status == 200
                    and sample.kind in ("ingest", "read")
                ):
                    done[sample.kind] = min(done.get(sample.kind, sample.ended), sample.ended)
        if len(done) == 2:
            return max(done.values()) - since
        time.sleep(0.1)
    run.problem(f"service did not resume within {RECOVERY_BOUND:.0f} s")
    return RECOVERY_BOUND


def token_info(run: Run, token: str, kind: str, who: str) -> tuple[int, int]:
    reply = until_ok(run, kind, who, "GET", "/api/v2/information.php?api=token_info", token)
    assert isinstance(reply.body, dict)
    row = reply.body["data"][0]
    return int(row["token_use_today"]), int(row["all_token_today"])


def three_in_flight(run: Run, token: str, round_: int) -> list[int]:
    """Two ingests on one token hold their slots (bodies still streaming) while a third request
    arrives: the statuses of the two ingests and the third, which must be the one refused."""
    import requests

    release = threading.Event()
    replies: list[int] = []

    def slow_post(index: int) -> None:
        key, product, offset, quantity = event_spec(900_000 + round_, index)
        when = (run.base + timedelta(microseconds=offset % 1_000_000)).isoformat()
        event = {"id": key, "product": product, "time": when, "quantity": quantity or "1"}
        payload = json.dumps([event]).encode()

        def chunks() -> Iterator[bytes]:
            yield payload[:1]
            release.wait(timeout=20)
            yield payload[1:]

        try:
            reply = requests.post(
                f"http://127.0.0.1:{run.port}/api/v2/events",
                data=chunks(),
                headers={"wolkvox-token": token, "Content-Type": "application/json"},
                timeout=CLIENT_TIMEOUT,
            )
            replies.append(reply.status_code)
        except requests.RequestException:
            replies.append(0)

    threads = [threading.Thread(target=slow_post, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.7)
    third = run.record("limits", "-", call(run.port, "GET", "/api/v2/billing.php?api=rsync", token))
    release.set()
    for thread in threads:
        thread.join(timeout=CLIENT_TIMEOUT)
    if not (third.busy and third.retry_after == "1"):
        run.problem(
            f"round {round_}: a third request in flight got {third.describe()}, "
            "not the concurrency 403"
        )
    if sorted(replies) != [200, 200]:
        run.problem(f"round {round_}: the two requests holding slots got {replies}")
    return [*replies, third.status]


def outage_scenario(name: str, env: Environment, opts: Options) -> Result:
    """Redis or PostgreSQL goes away for a few seconds, repeatedly, under sustained load."""
    redis_case = name == "redis-restart"
    result = Result(name, "PostgreSQL + Redis, 2 workers")
    started = time.monotonic()
    pg, cache = env.postgres(), env.redis()
    db = pg.create_database("faults_" + name.replace("-", "_"))
    writer, reader = make_tenant(db, "faults", tokens=2)
    concurrency = make_tenant(db, "limits", tokens=1)[0]
    quota_token = make_tenant(db, "quota", licenses=1, tokens=1)[0]  # 1,000 requests a day
    server = env.server(
        db,
        name,
        ("--redis", cache.url, "--workers", "2"),
        {"VOXMETER_REDIS_PREFIX": "faults-" + name},
    )
    base, room = base_time()
    run = Run(server.port, base, room)
    rng = random.Random(opts.seed)
    quota_checks: list[str] = []
    concurrency_checks: list[list[int]] = []
    at_risk = ambiguous = 0
    try:
        result.restart_s.append(round(server.start(), 3))
        wait_admitted(run, writer, "W")
        if redis_case:
            wait_admitted(run, quota_token, "-")
            three_in_flight(run, concurrency, -1)
        with load(run, writer, reader, opts.seed):
            for round_ in range(opts.rounds):
                if time.monotonic() - started > opts.max_seconds:
                    break
                load_for = rng.uniform(1.5, 3.0)
                if redis_case:
                    for _ in range(100):
                        until_ok(
                            run, "quota", "-", "GET", "/api/v2/billing.php?api=rsync", quota_token
                        )
                    before = token_info(run, quota_token, "quota", "-")
                    load_for = max(load_for, FLUSH_SETTLE)
                time.sleep(load_for)
                down = time.monotonic()
                if redis_case:
                    cache.stop(signal.SIGKILL if round_ % 2 else signal.SIGTERM)
                else:
                    pg.stop("immediate" if round_ % 2 else "fast")
                time.sleep(opts.down)
                if redis_case:
                    cache.start()
                else:
                    pg.start()
                up = time.monotonic()
                run.outages.append((down, up))
                result.recovery_s.append(round(wait_recovered(run, up), 3))
                result.rounds += 1
                if redis_case:
                    after = token_info(run, quota_token, "quota", "-")
                    exact = after == (before[0] + 1, before[1] + 1)
                    quota_checks.append(f"{before[1]}->{after[1]}")
                    if not exact:
                        run.problem(
                            f"round {round_}: quiet token's counts {before} became {after} "
                            "after the Redis restart, not +1"
                        )
                    concurrency_checks.append(three_in_flight(run, concurrency, round_))
                    at_risk += _admitted_main(run, down - COUNTS_AT_RISK, down)
                    ambiguous += _ambiguous_main(run, down - COUNTS_AT_RISK, down)
        resolve_unknown(run, writer, reader)
        verdict = verify(run, reader)
        if redis_case:
            result.limits = _final_limits(run, reader, quota_token, at_risk, ambiguous)
            result.limits["quiet_token_counts"] = quota_checks
            result.limits["three_in_flight"] = concurrency_checks
        code = server.stop()
        if code != 0:
            run.problem(f"graceful stop exited {code}")
    except RuntimeError as exc:
        run.problem(str(exc))
        verdict = Verdict()
    outage_checks(run, result)
    windows = [(d, u + r) for (d, u), r in zip(run.outages, result.recovery_s, strict=False)]
    _unexpected(run, windows)
    result.server_tracebacks = server.tracebacks()
    if result.rounds < opts.rounds:
        run.problem(f"only {result.rounds} of {opts.rounds} rounds within {opts.max_seconds:.0f} s")
    result.finish(run, verdict)
    result.seconds = round(time.monotonic() - started, 1)
    return result


def _admitted_main(run: Run, start: float, end: float) -> int:
    """Main-operation requests started in [start, end] that were admitted (counted)."""
    with run.lock:
        return sum(
            1
            for s in run.samples
            if s.who in ("W", "R") and start <= s.started <= end and s.status in ADMITTED
        )


def _ambiguous_main(run: Run, start: float, end: float) -> int:
    """Main-operation requests whose admission the client cannot know (no reply, or a 503 that
    may have followed an admission)."""
    with run.lock:
        return sum(
            1
            for s in run.samples
            if s.who in ("W", "R") and start <= s.started <= end and s.status in (0, 503)
        )


def _final_limits(
    run: Run, reader: str, quota_token: str, at_risk: int, ambiguous: int
) -> dict[str, object]:
    """After the restarts: the busy operation's counter lost at most the requests admitted in
    the last seconds before each restart (the README: "the last second of counts"; `ambiguous`
    are replies that cannot tell whether they were counted), and the small operation's quota
    ends exactly at 1,000."""
    _, counted = token_info(run, reader, "read", "R")
    with run.lock:
        admitted = sum(1 for s in run.samples if s.who in ("W", "R") and s.status in ADMITTED)
    deficit = admitted - counted
    if not -ambiguous <= deficit <= at_risk + ambiguous:
        run.problem(
            f"operation counter {counted} vs {admitted} admitted: "
            f"deficit {deficit} outside [{-ambiguous}, {at_risk + ambiguous}]"
        )
    _, used = token_info(run, quota_token, "quota", "-")
    granted = 0
    refused: Reply | None = None
    for _ in range(1_100):
        reply = run.record(
            "quota", "-", call(run.port, "GET", "/api/v2/billing.php?api=rsync", quota_token)
        )
        if reply.status == 200:
            granted += 1
            continue
        refused = reply
        break
    quota_ok = (
        refused is not None
        and refused.status == 403
        and isinstance(refused.body, dict)
        and refused.body.get("msg") == "TOKEN LIMIT EXCEEDED"
        and (refused.retry_after or "").isdigit()
        and granted == 1_000 - used
    )
    if not quota_ok:
        run.problem(
            f"quota: {used} used, then {granted} granted before "
            f"{refused.describe() if refused else 'no refusal'}; expected {1_000 - used}"
        )
    return {
        "main_operation_admitted": admitted,
        "main_operation_counted": counted,
        "counts_lost": deficit,
        "admitted_in_the_last_2_s_before_restarts": at_risk,
        "ambiguous_replies_before_restarts": ambiguous,
        "quota_used_before_final_check": used,
        "quota_granted_until_refused": granted,
        "quota_exact": quota_ok,
    }
