"""Instructions per billing.php request of a whole server, this tree against an earlier release.

Throughput over loopback on a shared 2-core machine moves by 10 % from one run to the next, more
than the differences worth finding; instruction counts move by 0.1 %. Each tree's server (its
own app and HTTP protocol in uvicorn, as `voxmeter serve` builds them, on a database made by its
own CLI) runs under `valgrind --tool=callgrind`; a client in this process sends `--warm-up`
requests on two keep-alive connections, the counters are zeroed (`callgrind_control -z`),
`--requests` more are sent and the counters dumped. Every thread of the server counts.

Under callgrind a request takes about fifty times as long, so whatever a server does once a
second would weigh fifty times more per request than it does at full speed. Both trees' servers
therefore run without their background tasks (flushes, month closes, deliveries), and with their
one-second caches of tokens and of the maintenance switch made long-lived (at full speed they
are read again once a second, among thousands of requests). Requires valgrind; about two
minutes per tree with the defaults.

    .venv/bin/python -m bench.instructions_reads 59cd457
    .venv/bin/python -m bench.instructions_reads 59cd457 --path '/api/v2/billing.php?api=all'
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.server import free_port
from bench.vs_release import (
    BILLING,
    Side,
    both_sides,
    clean_environment,
    fresh_copy,
    provision,
)

# Runs in the measured tree's interpreter. argv: database, port.
_SERVER_DRIVER = """
import sys
import uvicorn
from voxmeter import bootstrap
from voxmeter.config import Settings
from voxmeter.entrypoints.http import state
from voxmeter.entrypoints.http.app import create_app
from voxmeter.entrypoints.http.protocol import ServerConfig
from voxmeter.service import tenancy

defaults = tenancy.Authenticator.__init__.__defaults__
if 1.0 not in defaults or state.MaintenanceFlag.ttl != 1.0:
    sys.exit("this tree's token or maintenance cache has no one-second life to lengthen")
tenancy.Authenticator.__init__.__defaults__ = tuple(1e9 if d == 1.0 else d for d in defaults)
state.MaintenanceFlag.ttl = 1e9
settings = Settings(database_url=sys.argv[1])
sys.setswitchinterval(settings.switch_interval)
app = create_app(bootstrap.app_state(settings, bootstrap.context(settings)), background=False)
config = ServerConfig(app, request_timeout=600.0, host="127.0.0.1", port=int(sys.argv[2]),
                      log_level="warning", access_log=False)
uvicorn.Server(config).run()
"""

CONNECTIONS = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="the earlier release: a git ref of this repository")
    parser.add_argument("--path", default=BILLING, help=f"the read to send ({BILLING})")
    parser.add_argument("--warm-up", type=int, default=300, help="requests not counted (300)")
    parser.add_argument("--requests", type=int, default=1000, help="requests counted (1000)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    if args.requests < CONNECTIONS or args.warm_up < CONNECTIONS:
        parser.error(f"--requests and --warm-up must be at least {CONNECTIONS}")
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed: apt-get install -y valgrind")
    clean_environment()
    folder = Path(tempfile.mkdtemp(prefix="voxmeter-instructions-reads-"))
    try:
        compare(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def compare(args: argparse.Namespace, folder: Path) -> None:
    sides = both_sides(args.ref, folder)
    print(f"instructions per request of {args.path}: old = {sides[0].label}, "
          f"new = {sides[1].label}", flush=True)  # fmt: skip
    results: dict[str, float] = {}
    for side in sides:
        provision(side, folder / "template" / side.name, 1)
        # Compiled beforehand: a module compiled during the count would be counted.
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(side.src)], check=True)
        total = counted(side, folder, args)
        results[side.name] = total / args.requests
        print(f"{side.name}: {total:,} instructions for {args.requests:,} requests: "
              f"{results[side.name]:,.0f} per request", flush=True)  # fmt: skip
    ratio = results["new"] / results["old"]
    print(f"new/old {ratio:.3f}")
    if args.json:
        out = {"bench": "instructions_reads", "old": sides[0].label, "new": sides[1].label,
               "path": args.path, "requests": args.requests, "ratio": ratio, **results}  # fmt: skip
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


def counted(side: Side, folder: Path, args: argparse.Namespace) -> int:
    """Instructions of the side's server for `args.requests` requests, after the warm-up."""
    db = fresh_copy(side, folder / f"run-{side.name}")
    out = folder / f"callgrind-{side.name}.out"
    port = free_port()
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    server = subprocess.Popen(
        [*valgrind, sys.executable, "-c", _SERVER_DRIVER, db, str(port)],
        env={**os.environ, **side.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_listening(server, port)
        send(port, side.tokens[0], args.path, args.warm_up)
        control(server.pid, "-z")
        send(port, side.tokens[0], args.path, args.requests)
        control(server.pid, "-d")
    finally:
        server.terminate()
        _, err = server.communicate(timeout=600)
    dumps = sorted(folder.glob(f"{out.name}.*"))
    if not dumps:
        raise SystemExit(f"{side.name}: no dump from callgrind:\n{err[-3000:]}")
    for line in dumps[0].read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"{side.name}: no total in {dumps[0]}")


def wait_listening(server: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if server.poll() is not None:
            _, err = server.communicate()
            raise SystemExit(f"the server under callgrind exited:\n{err[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the server under callgrind did not start within 10 minutes")


def control(pid: int, flag: str) -> None:
    subprocess.run(["callgrind_control", flag, str(pid)], check=True, capture_output=True)


def send(port: int, token: str, path: str, count: int) -> None:
    """`count` requests over CONNECTIONS keep-alive connections at once; every reply a 200."""
    failures: list[str] = []

    def connection(requests: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        try:
            for _ in range(requests):
                conn.request("GET", path, headers={"wolkvox-token": token})
                reply = conn.getresponse()
                body = reply.read()
                if reply.status != 200:
                    failures.append(f"{reply.status} {body[:200]!r}")
                    return
        finally:
            conn.close()

    shares = [count // CONNECTIONS + (k < count % CONNECTIONS) for k in range(CONNECTIONS)]
    threads = [threading.Thread(target=connection, args=(n,)) for n in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"replies other than 200: {failures[0]}")


if __name__ == "__main__":
    main()
