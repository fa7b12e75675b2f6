"""This tree against an earlier release, side by side in one run: embedded ingest and billing reads.

The earlier release's `src/` is extracted from git (`git archive REF`) into a temporary folder;
each side runs as its own `voxmeter serve` process with its source on PYTHONPATH, the same
interpreter and dependencies, the same flags and a cleaned environment. Each side's database is
made by its own CLI (`migrate`, `operation create`, `token create`: their schemas may differ),
once; every round then starts both servers on fresh copies of those databases and takes every
measure `--repeats` times on each side, alternately (ABBA, the first side flipped from measure
to measure and round to round), so both see the same machine noise, and keeps each side's best
sample of the round (other work only ever slows a sample down):

- `/healthz` with wrk at 2 and 16 connections (the baseline);
- HTTP ingest of time-ordered ids in batches of 1,000 and of 10,000, 2 in flight (the
  per-token limit); the same bodies for both sides and every round, each repeat a share;
- `billing.php` with wrk at 2 and 16 connections, one token per connection, on the month the
  ingest filled.

With `--alerts N` the new side's operation also has N alerts on the ingested products (figure,
forecast and amount in turn, priced), one in twenty of them reached by the warm-up batch, the
rest never, all delivering to a webhook receiver in this process that hangs `--hang` seconds
(default 30) before answering: ingest must stay as fast while deliveries time out and retry in
the background. The old side has no alerts.

Prints absolute figures (median over rounds per side), the ratio new/old per measure (median of
the rounds' paired ratios, with min-max), the server CPU time per event or request, and flags
every measure more than 5 % worse. The whole run is bounded by `--budget` (default 240 s): no
round starts that would not finish within it. Loopback only. Requires `wrk`.

    .venv/bin/python -m bench.vs_release 59cd457
    .venv/bin/python -m bench.vs_release v1.2 --rounds 9 --budget 600 --json /tmp/vs.json
    .venv/bin/python -m bench.vs_release 59cd457 --alerts 100 --only ingest_1k --only ingest_10k
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.common import cpu_note, write_json
from bench.read import lua_for, wrk
from bench.receiver import Receiver
from bench.server import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
PRODUCTS = (b"ivr_minutes", b"rec_minutes", b"tts_chars", b"interactions")
TOLERANCE = 0.05
TOKENS = 16
IN_FLIGHT = 2


@dataclass
class Side:
    """One server's source tree and what was measured on it."""

    name: str
    src: Path
    label: str
    template: Path = Path()
    tokens: list[str] = field(default_factory=list)
    setup: list[list[str]] = field(default_factory=list)
    """More CLI commands (without --db) run on the side's template after its tokens."""

    @property
    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(self.src)}


def clean_environment() -> None:
    """No VOXMETER_* setting from the caller's shell: both servers run on their defaults and the
    flags given here, never on something only one of them reads."""
    for name in [n for n in os.environ if n.startswith("VOXMETER_")]:
        del os.environ[name]
    os.environ.pop("PYTHONPATH", None)


def export_tree(ref: str, into: Path) -> tuple[Path, str]:
    """`src/` of `ref` extracted under `into`; the source folder and the commit's short id."""
    found = subprocess.run(
        ["git", "rev-parse", "--short", f"{ref}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        raise SystemExit(f"{ref!r} names no commit of this repository")
    commit = found.stdout.strip()
    archive = subprocess.run(
        ["git", "archive", commit, "src"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src", commit


def both_sides(ref: str, folder: Path) -> list[Side]:
    """The earlier release's tree (extracted under `folder`) and this one, as "old" and "new"."""
    old_src, commit = export_tree(ref, folder / "old-tree")
    return [Side("old", old_src, f"{ref} ({commit})"), Side("new", ROOT / "src", this_tree_label())]


def this_tree_label() -> str:
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return f"this tree (HEAD {head}{', src modified' if dirty else ''})"


def python(side: Side, *args: str) -> str:
    """Run this interpreter on the side's source tree; its stdout (a failure shows stderr)."""
    done = subprocess.run(
        [sys.executable, *args],
        env={**os.environ, **side.env},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{side.name}: {args[-1][:200]} failed:\n{done.stderr}")
    return done.stdout


def check_side(side: Side) -> tuple[set[str], str]:
    """The side really imports its own tree; its `serve` flags and default settings."""
    found = python(side, "-c", "import voxmeter; print(voxmeter.__file__)").strip()
    if not Path(found).resolve().is_relative_to(side.src.resolve()):
        raise SystemExit(f"{side.name}: voxmeter imported from {found}, not from {side.src}")
    flags = set(re.findall(r"(--[a-z][a-z-]*)", python(side, "-m", "voxmeter", "serve", "--help")))
    defaults = subprocess.run(
        [sys.executable, "-c", "from voxmeter.config import Settings; print(repr(Settings()))"],
        env={**os.environ, **side.env},
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return flags, defaults or "(not readable)"


# Runs CLI commands in one interpreter (a process each would cost a second per token): every
# argument list of argv[1] (JSON) through the `voxmeter` command group, one JSON line of output
# per command; any failure exits non-zero.
_CLI_DRIVER = """
import contextlib, io, json, sys
from voxmeter.entrypoints.cli.main import cli
for args in json.loads(sys.argv[1]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli.main(args, prog_name="voxmeter", standalone_mode=False)
    print(json.dumps(out.getvalue()))
"""


def provision(side: Side, folder: Path, tokens: int) -> None:
    """A database made by the side's own CLI: schema, an operation with a quota no run reaches,
    and `tokens` tokens. Every round's server starts on a fresh copy of it."""
    folder.mkdir(parents=True)
    db = f"sqlite:///{folder / 'template.db'}"
    commands = [
        ["migrate", "--db", db],
        ["operation", "create", "bench", "--server", "9901", "--licenses", "1000000", "--db", db],
    ] + [
        ["token", "create", "--operation", "bench", "--description", f"bench {n}", "--db", db]
        for n in range(tokens)
    ]
    commands += [[*command, "--db", db] for command in side.setup]
    outputs = [
        json.loads(line)
        for line in python(side, "-c", _CLI_DRIVER, json.dumps(commands)).splitlines()
    ]
    side.tokens = [out.strip().splitlines()[-1] for out in outputs[2 : 2 + tokens]]
    side.template = folder / "template.db"


def alert_setup(count: int, webhook: str) -> list[list[str]]:
    """Prices of the ingested products, then `count` alerts on them: figure, forecast and
    amount in turn; every twentieth reached by the first batch, the others never."""
    commands = [
        ["price", "set", "--product", p.decode(), "--currency", "USD", "--unit-price", "0.01"]
        for p in PRODUCTS
    ]
    for n in range(count):
        on = ("figure", "forecast", "amount")[n % 3]
        threshold = "1" if n % 20 == 0 else "1000000000000"
        commands.append(
            ["alert", "create", "--operation", "bench", "--product", PRODUCTS[n % 4].decode(),
             "--on", on, "--threshold", threshold, "--webhook", webhook]
        )  # fmt: skip
    return commands


def fresh_copy(side: Side, folder: Path) -> str:
    """A copy of the side's provisioned database (closed by its CLI, so one file)."""
    folder.mkdir(parents=True)
    target = folder / "bench.db"
    shutil.copyfile(side.template, target)
    for suffix in ("-wal", "-shm", ".secret-key"):
        extra = side.template.with_name(side.template.name + suffix)
        if extra.exists():
            copied = target.with_name(target.name + suffix)
            shutil.copyfile(extra, copied)
            copied.chmod(0o600)
    return f"sqlite:///{target}"


def event_times(total: int) -> list[bytes]:
    """`total` ascending times spread from the start of this month (UTC) to two minutes ago:
    an open month, nothing in the future."""
    now = datetime.now(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    first = int(start.timestamp())
    span = max(1, int((now - start).total_seconds()) - 120)
    out = []
    for k in range(total):
        at = datetime.fromtimestamp(first + k * span // total, UTC)
        out.append(at.strftime("%Y-%m-%dT%H:%M:%SZ").encode())
    return out


def bodies(size: int, count: int, first_id: int, times: list[bytes]) -> list[bytes]:
    """`count` JSON batches of `size` events with time-ordered ids from `first_id`, the events
    spread over four products (one of them a count without quantity)."""
    parts = []
    for i in range(size):
        product = PRODUCTS[i & 3]
        quantity = b"" if product == b"interactions" else b',"quantity":"1.5"'
        parts.append(b'{"id":"%%s","product":"%s","time":"%%s"%s}' % (product, quantity))
    template = b"[" + b",".join(parts) + b"]"
    out = []
    for n in range(count):
        values: list[bytes] = []
        for k in range(first_id + n * size, first_id + (n + 1) * size):
            values += [b"evt-%014d" % k, times[k]]
        out.append(template % tuple(values))
    return out


def cpu_seconds(server: ServerProcess) -> float:
    """User + system CPU time of the server and its workers so far."""
    ticks = 0
    for pid in server.pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def post(conn: http.client.HTTPConnection, token: str, payload: bytes) -> None:
    conn.request(
        "POST",
        "/api/v2/events",
        payload,
        {"wolkvox-token": token, "Content-Type": "application/json"},
    )
    reply = conn.getresponse()
    text = reply.read()
    if reply.status != 200:
        raise RuntimeError(f"ingest answered {reply.status}: {text[:300]!r}")


def ingest(
    server: ServerProcess, token: str, payloads: Sequence[bytes], size: int
) -> dict[str, float]:
    """Every payload, `IN_FLIGHT` at a time on keep-alive connections; events/s over the whole."""
    lock = threading.Lock()
    queue = list(reversed(payloads))
    errors: list[BaseException] = []

    def sender() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        try:
            while True:
                with lock:
                    if not queue or errors:
                        return
                    payload = queue.pop()
                post(conn, token, payload)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=sender) for _ in range(IN_FLIGHT)]
    cpu = cpu_seconds(server)
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(server) - cpu
    if errors:
        raise errors[0]
    events = len(payloads) * size
    return {"rate": events / elapsed, "cpu_us": cpu / events * 1e6, "seconds": elapsed}


def read(
    server: ServerProcess, path: str, tokens: list[str], connections: int, seconds: int
) -> dict[str, float]:
    """wrk, one thread and one token per connection; requests/s, p99 and CPU per request."""
    script = lua_for(tokens[:connections])
    try:
        cpu = cpu_seconds(server)
        result = wrk(server.url(path), script, connections, seconds)
        cpu = cpu_seconds(server) - cpu
    finally:
        script.unlink()
    if result["non2xx"]:
        raise RuntimeError(f"{path}: {result['non2xx']:.0f} replies other than 2xx")
    return {
        "rate": result["rps"],
        "p99_ms": result["p99"],
        "cpu_us": cpu / max(1.0, result["rps"] * seconds) * 1e6,
    }


BILLING = "/api/v2/billing.php?api=ivr_minutes"
MEASURES = ("healthz_c2", "healthz_c16", "ingest_1k", "ingest_10k", "billing_c2", "billing_c16")


@dataclass(frozen=True)
class Measure:
    key: str
    title: str
    unit: str
    run: Callable[[ServerProcess, Side, int], dict[str, float]]
    """Takes the measure on a server; the int is which of the round's repeats this is."""


def measures(args: argparse.Namespace, small: list[bytes], large: list[bytes]) -> list[Measure]:
    s, n = args.wrk_seconds, args.repeats

    def part(payloads: list[bytes], number: int) -> list[bytes]:
        """The `number`th of `n` consecutive shares of the batches (ids stay time-ordered)."""
        size = -(-len(payloads) // n)
        return payloads[number * size : (number + 1) * size]

    return [
        Measure("healthz_c2", "/healthz, 2 connections", "req/s",
                lambda srv, side, k: read(srv, "/healthz", side.tokens, 2, s)),
        Measure("healthz_c16", "/healthz, 16 connections", "req/s",
                lambda srv, side, k: read(srv, "/healthz", side.tokens, 16, s)),
        Measure("ingest_1k", "ingest, batches of 1,000", "ev/s",
                lambda srv, side, k: ingest(srv, side.tokens[0], part(small, k), 1_000)),
        Measure("ingest_10k", "ingest, batches of 10,000", "ev/s",
                lambda srv, side, k: ingest(srv, side.tokens[0], part(large, k), 10_000)),
        Measure("billing_c2", "billing.php, 2 connections", "req/s",
                lambda srv, side, k: read(srv, BILLING, side.tokens, 2, s)),
        Measure("billing_c16", "billing.php, 16 connections", "req/s",
                lambda srv, side, k: read(srv, BILLING, side.tokens, 16, s)),
    ]  # fmt: skip


def best(samples: list[dict[str, float]]) -> dict[str, float]:
    """The least disturbed of a side's samples in a round, figure by figure: other work on the
    machine only ever lowers throughput and raises latency and CPU time per unit."""
    out = {"rate": max(x["rate"] for x in samples)}
    for figure in ("p99_ms", "cpu_us"):
        if figure in samples[0]:
            out[figure] = min(x[figure] for x in samples)
    return out


def warm_up(server: ServerProcess, side: Side, payload: bytes) -> None:
    """The first requests of a fresh process import and prepare what they use: not measured.
    One small batch (ids of their own, the same for both sides) and a second of wrk each."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        post(conn, side.tokens[0], payload)
    finally:
        conn.close()
    read(server, "/healthz", side.tokens, 2, 1)
    read(server, BILLING, side.tokens, 2, 1)


def one_round(
    number: int,
    sides: list[Side],
    plan: list[Measure],
    serve_args: list[str],
    folder: Path,
    warm: bytes,
    fill: Sequence[bytes],
    repeats: int,
) -> dict[str, dict[str, dict[str, float]]]:
    """Both servers on fresh databases; each measure `repeats` times on each, alternately
    (ABBA...), the best of each side's samples kept. `fill`: batches of 10,000 stored
    unmeasured first (billing reads measured without the ingest)."""
    servers: dict[str, ServerProcess] = {}
    results: dict[str, dict[str, dict[str, float]]] = {m.key: {} for m in plan}
    try:
        for side in sides:
            place = folder / f"round{number}" / side.name
            server = ServerProcess(
                fresh_copy(side, place),
                args=serve_args,
                env=side.env,
                log_path=place / "server.log",
            )
            servers[side.name] = server
            server.run(timeout=60)
            warm_up(server, side, warm)
            if fill:
                ingest(server, side.tokens[0], fill, 10_000)
        for index, measure in enumerate(plan):
            first = sides if (number + index) % 2 == 0 else sides[::-1]
            samples: dict[str, list[dict[str, float]]] = {side.name: [] for side in sides}
            for repeat in range(repeats):
                for side in first if repeat % 2 == 0 else first[::-1]:
                    samples[side.name].append(measure.run(servers[side.name], side, repeat))
            for name, taken in samples.items():
                results[measure.key][name] = best(taken)
    finally:
        for server in servers.values():
            server.stop()
    return results


def summarise(
    plan: list[Measure], rounds: list[dict[str, dict[str, dict[str, float]]]]
) -> dict[str, dict[str, object]]:
    """Per measure: each side's median figures, and the medians of the rounds' new/old ratios.
    A measure is flagged when its median ratio is more than 5 % on the worse side (lower
    throughput, higher p99 or CPU per unit)."""
    out: dict[str, dict[str, object]] = {}
    for measure in plan:
        samples = [r[measure.key] for r in rounds]
        entry: dict[str, object] = {"title": measure.title, "unit": measure.unit}
        flags = []
        for figure, worse_if_higher in (("rate", False), ("p99_ms", True), ("cpu_us", True)):
            if figure not in samples[0]["new"]:
                continue
            ratios = [s["new"][figure] / s["old"][figure] for s in samples if s["old"][figure]]
            if not ratios:
                continue
            median = statistics.median(ratios)
            entry[figure] = {
                "old": statistics.median(s["old"][figure] for s in samples),
                "new": statistics.median(s["new"][figure] for s in samples),
                "ratio_median": median,
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
            }
            if (median > 1 + TOLERANCE) if worse_if_higher else (median < 1 - TOLERANCE):
                flags.append(figure)
        entry["worse_than_5_percent"] = flags
        out[measure.key] = entry
    return out


def report(summary: dict[str, dict[str, object]], rounds: int) -> None:
    """One line per measure: old, new, ratio new/old (median of rounds, min-max)."""
    print(f"\nmedians over {rounds} round(s); ratio = new/old, median of the rounds' ratios "
          f"(min-max); '<<' marks more than 5 % worse")  # fmt: skip
    header = (
        f"{'measure':<30} {'old':>10} {'new':>10} {'ratio':>21}  "
        f"{'p99 old':>8} {'p99 new':>8} {'p99 ratio':>21}  {'CPU us/unit ratio':>21}"
    )
    print(header)
    for entry in summary.values():
        rate = entry["rate"]
        assert isinstance(rate, dict)
        flags = entry["worse_than_5_percent"]
        assert isinstance(flags, list)
        line = (
            f"{str(entry['title']) + ' (' + str(entry['unit']) + ')':<30} "
            f"{rate['old']:>10,.0f} {rate['new']:>10,.0f} "
            f"{_ratio(rate):>21}{' <<' if 'rate' in flags else '   '}"
        )
        p99 = entry.get("p99_ms")
        if isinstance(p99, dict):
            line += (
                f"{p99['old']:>8.2f} {p99['new']:>8.2f} "
                f"{_ratio(p99):>21}{' <<' if 'p99_ms' in flags else '   '}"
            )
        else:
            line += f"{'':>8} {'':>8} {'':>21}   "
        cpu = entry.get("cpu_us")
        if isinstance(cpu, dict):
            line += f"{_ratio(cpu):>21}{' <<' if 'cpu_us' in flags else ''}"
        print(line)


def _ratio(figures: dict[str, float]) -> str:
    return f"{figures['ratio_median']:.3f} ({figures['ratio_min']:.3f}-{figures['ratio_max']:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="the earlier release: a git ref of this repository")
    parser.add_argument("--rounds", type=int, default=8, help="at most this many rounds")
    parser.add_argument("--budget", type=float, default=240.0, help="seconds for the whole run")
    parser.add_argument("--wrk-seconds", type=int, default=1, help="length of each wrk run")
    parser.add_argument(
        "--repeats", type=int, default=2, help="samples per measure, side and round (best kept)"
    )
    parser.add_argument("--batches-1k", type=int, default=100, help="batches of 1,000 per round")
    parser.add_argument("--batches-10k", type=int, default=20, help="batches of 10,000 per round")
    parser.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        help="a flag for both servers' `voxmeter serve` (repeat; e.g. --serve-arg=--workers=1); "
        "refused unless both trees know it",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=MEASURES,
        help="measure only this (repeat for several); billing reads alone are taken after "
        "an unmeasured ingest of the batches of 10,000",
    )
    parser.add_argument(
        "--alerts", type=int, default=0, help="alerts on the new side's operation (default 0)"
    )
    parser.add_argument(
        "--hang", type=float, default=30.0, help="seconds the alerts' receiver hangs (default 30)"
    )
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    if args.repeats < 1 or min(args.batches_1k, args.batches_10k) < args.repeats:
        sys.exit("--repeats must be at least 1 and at most the number of batches")
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    began = time.monotonic()
    clean_environment()
    folder = Path(tempfile.mkdtemp(prefix="voxmeter-vs-release-"))
    try:
        with Receiver(hang=args.hang) as receiver:
            compare(args, folder, began, receiver)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def compare(args: argparse.Namespace, folder: Path, began: float, receiver: Receiver) -> None:
    """The whole run in `folder`: both trees set up, the rounds, the summary."""
    sides = both_sides(args.ref, folder)
    sides[1].setup = alert_setup(args.alerts, receiver.url)
    defaults = {}
    for side in sides:
        flags, defaults[side.name] = check_side(side)
        named = [a.split("=")[0] for a in args.serve_arg if a.startswith("--")]
        unknown = [name for name in named if name not in flags]
        if unknown:
            sys.exit(f"{side.name} ({side.label}): `serve` has no {', '.join(unknown)}")
    if defaults["old"] != defaults["new"]:
        print(f"note: default settings differ:\n  old {defaults['old']}\n  new {defaults['new']}")
    for side in sides:
        provision(side, folder / "template" / side.name, TOKENS)
    small_count, large_count = args.batches_1k, args.batches_10k
    total = 1_000 * (small_count + 1) + 10_000 * large_count
    times = event_times(total)
    warm = bodies(1_000, 1, 0, times)[0]
    small = bodies(1_000, small_count, 1_000, times)
    large = bodies(10_000, large_count, 1_000 * (small_count + 1), times)
    plan = [m for m in measures(args, small, large) if m.key in (args.only or [m.key])]
    fill = large if not any(m.key.startswith("ingest") for m in plan) else []
    load_before = os.getloadavg()
    print(
        f"vs release: old = {sides[0].label}, new = {sides[1].label}"
        + (f" with {args.alerts} alerts, receiver hanging {args.hang:.0f} s" if args.alerts else "")
        + "; embedded SQLite, "
        f"`serve {' '.join(args.serve_arg)}`; {cpu_note()}; load average "
        f"{load_before[0]:.1f} before; set up in {time.monotonic() - began:.0f} s",
        flush=True,
    )
    rounds: list[dict[str, dict[str, dict[str, float]]]] = []
    longest = 0.0
    while len(rounds) < args.rounds:
        left = args.budget - (time.monotonic() - began)
        if rounds and left < longest * 1.1:
            break
        started = time.monotonic()
        result = one_round(
            len(rounds), sides, plan, args.serve_arg, folder, warm, fill, args.repeats
        )
        rounds.append(result)
        longest = max(longest, time.monotonic() - started)
        print(
            f"round {len(rounds)} ({time.monotonic() - started:.0f} s): "
            + ", ".join(
                f"{m.key} {result[m.key]['new']['rate'] / result[m.key]['old']['rate']:.2f}"
                for m in plan
            ),
            flush=True,
        )
    summary = summarise(plan, rounds)
    report(summary, len(rounds))
    load_after = os.getloadavg()
    flagged = [k for k, v in summary.items() if v["worse_than_5_percent"]]
    if args.alerts:
        print(f"the hanging receiver got {len(receiver.received)} POSTs during the run")
    print(
        f"\n{cpu_note()}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; "
        f"{time.monotonic() - began:.0f} s in all; more than 5 % worse: "
        f"{', '.join(flagged) if flagged else 'none'}"
    )
    write_json(
        args.json,
        {
            "bench": "vs_release",
            "old": sides[0].label,
            "new": sides[1].label,
            "serve_args": args.serve_arg,
            "alerts": args.alerts,
            "receiver_posts": len(receiver.received),
            "load_average": [load_before[0], load_after[0]],
            "wrk_seconds": args.wrk_seconds,
            "events_per_round": {
                "batches_1k": small_count * 1_000,
                "batches_10k": large_count * 10_000,
            },
            "summary": summary,
            "rounds": rounds,
            "seconds": time.monotonic() - began,
        },
    )


if __name__ == "__main__":
    main()
