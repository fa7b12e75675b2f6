"""A real `voxmeter serve` process on a free loopback port: the one harness of bench/ and tests/e2e.

Both the benchmarks and the end-to-end tests need the server exactly as a user runs it (its own
process, its own workers); this module starts it, waits for `/healthz`, and stops or kills it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

#: Under pytest-xdist (PYTEST_XDIST_WORKER=gwN) worker N takes its ports from a range of its
#: own below the kernel's ephemeral ports: a port the kernel hands out is free only until someone
#: binds it, so two workers (or a client socket) could otherwise be given the same one before
#: the server started on it binds, and a test would talk to another test's server.
WORKER_PORTS = 1000
_FIRST_WORKER_PORT = 20000
_next_port: dict[int, int] = {}


def _worker_index() -> int | None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else None


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A loopback port nobody listens on right now (per xdist worker: from its own range)."""
    worker = _worker_index()
    if worker is None or worker >= (32768 - _FIRST_WORKER_PORT) // WORKER_PORTS:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    first = _FIRST_WORKER_PORT + worker * WORKER_PORTS
    for _ in range(WORKER_PORTS):
        offset = _next_port.get(worker, 0)
        _next_port[worker] = (offset + 1) % WORKER_PORTS
        if _bindable(first + offset):
            return first + offset
    raise RuntimeError(f"no free port in {first}..{first + WORKER_PORTS - 1}")


def healthy(base: str, timeout: float = 1.0) -> bool:
    """True once `GET /healthz` answers 200."""
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=timeout) as reply:
            return int(reply.status) == 200
    except (OSError, urllib.error.URLError):
        return False


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group (zombies excluded)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


class ServerProcess:
    """`voxmeter serve --db DB --port PORT ARGS`, its output in `log_path` (or discarded).

    `own_session` puts the server and its workers in a process group of their own, so that
    `kill9()` reaches all of them at once.
    """

    def __init__(
        self,
        db: str,
        port: int | None = None,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        own_session: bool = False,
    ) -> None:
        self.db = db
        self.port = free_port() if port is None else port
        self.args = tuple(args)
        self.env = dict(env or {})
        self.log_path = log_path
        self.own_session = own_session
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "voxmeter",
            "serve",
            "--db",
            self.db,
            "--port",
            str(self.port),
            *self.args,
        ]

    def launch(self) -> None:
        """Start the process without waiting for it."""
        if self.log_path is None:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                start_new_session=self.own_session,
            )
            return
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=self.own_session,
            )

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until `/healthz` answers 200; a server that exits or never answers fails with its log."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            if healthy(self.base):
                return
            time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def run(self, timeout: float = 30.0) -> float:
        """Start and wait for `/healthz`; return the seconds that took."""
        started = time.monotonic()
        self.launch()
        self.wait_healthy(timeout)
        return time.monotonic() - started

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """`sig` (graceful by default) and wait; the exit status, or None if it had to be killed."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None

    def kill9(self) -> None:
        """SIGKILL to the server (its whole group with `own_session`) until none of it is left."""
        assert self.proc is not None
        if not self.own_session:
            self.proc.kill()
            self.proc.wait(timeout=30)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while group_members(self.proc.pid):
            if time.monotonic() > deadline:
                raise RuntimeError("server processes survived kill -9")
            time.sleep(0.05)

    def pids(self) -> list[int]:
        """The server process and its direct children (the workers)."""
        assert self.proc is not None
        pids = [self.proc.pid]
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        with contextlib.suppress(OSError):
            pids += [int(p) for p in children.read_text().split()]
        return pids

    def rss_mib(self) -> float:
        """Resident memory of the server, its worker processes included."""
        total = 0.0
        for pid in self.pids():
            try:
                lines = Path(f"/proc/{pid}/status").read_text().splitlines()
            except OSError:
                continue
            for line in lines:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        return total
