"""Shared benchmark plumbing: a fresh database, a tenant, the server process, RSS sampling."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from bench.server import ServerProcess
from bench.server import free_port as free_port  # the bench scripts' import of it
from voxmeter import bootstrap
from voxmeter.config import Settings
from voxmeter.service import tenancy


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


class Server(ServerProcess):
    """The shared server process, its output discarded; `start()` waits for /healthz."""

    def __init__(self, db: str, port: int | None = None, args: tuple[str, ...] = ()) -> None:
        super().__init__(db, port, args)

    def start(self) -> Server:
        self.run(timeout=30)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        return super().stop(sig, timeout)


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
