"""Shared benchmark plumbing: a real server process on loopback, a tenant, RSS sampling."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from voxmeter import bootstrap
from voxmeter.config import Settings
from voxmeter.service import tenancy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_db(folder: str | None = None) -> str:
    base = Path(folder or tempfile.mkdtemp(prefix="voxmeter-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{base / 'bench.db'}"


def fresh_postgres(admin: str = "postgresql://postgres@127.0.0.1:5432/postgres") -> str:
    """A new, empty PostgreSQL database for one bench run (left in place for inspection)."""
    import uuid

    import psycopg

    name = f"voxbench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.rsplit("/", 1)[0] + "/" + name


def make_tenant(
    db: str, name: str = "bench", licenses: int = 1_000_000, tokens: int = 1
) -> list[str]:
    """Create an operation with a huge quota and `tokens` tokens; return the secrets."""
    ctx = bootstrap.context(Settings(database_url=db))
    try:
        op = tenancy.find_operation(ctx, name, "9901")
    except Exception:
        op = tenancy.create_operation(ctx, name, "9901", "UTC", licenses)
    secrets = [tenancy.create_token(ctx, op, f"bench {i}", [])[1] for i in range(tokens)]
    ctx.storage.close()
    return secrets


@dataclass
class Server:
    db: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    args: tuple[str, ...] = ()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "voxmeter",
                "serve",
                "--db",
                self.db,
                "--port",
                str(self.port),
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=1) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def rss_mib(self) -> float:
        """Resident memory of the server, its worker processes included."""
        assert self.proc is not None
        pids = [self.proc.pid]
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
        total = 0.0
        for pid in pids:
            try:
                lines = Path(f"/proc/{pid}/status").read_text().splitlines()
            except OSError:
                continue
            for line in lines:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        return total

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)


class RssSampler(threading.Thread):
    """Samples the server's RSS every `interval` seconds; `peak` is the highest seen."""

    def __init__(self, server: Server, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.interval = interval
        self.peak = 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.peak = max(self.peak, self.server.rss_mib())
            except OSError:
                return
            self._halt.wait(self.interval)

    def stop(self) -> float:
        self._halt.set()
        self.join()
        return self.peak


def add_backend_option(parser: argparse.ArgumentParser) -> None:
    """`--backend sqlite|postgres`, the same for every bench script."""
    parser.add_argument(
        "--backend",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="postgres: a fresh database on 127.0.0.1:5432 and limits in Redis on 127.0.0.1:6379",
    )


def write_json(path: str | None, result: dict[str, object]) -> None:
    """Save a bench's figures for bench/report.py (nothing when `path` is None)."""
    if path:
        import json

        result = {**result, "machine": cpu_note()}
        Path(path).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def cpu_note() -> str:
    return f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
