"""Private PostgreSQL and Redis instances, and the server processes of a run."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.common import free_port
from bench.server import ServerProcess, group_members

# --- private services and server processes --------------------------------------------------


def _pg_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").iterdir(), key=lambda p: int(p.name))
    return versions[-1] / "bin"


class PrivatePostgres:
    """A PostgreSQL cluster of this run only: its own data directory, port and socket folder."""

    def __init__(self, root: Path) -> None:
        self.root = root / "pg"
        self.root.mkdir()
        shutil.chown(self.root, "postgres")
        self.data = self.root / "data"
        self.port = free_port()
        self.bin = _pg_bin()
        self.running = False
        self._as_postgres(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"
        )
        self.start()

    def _as_postgres(self, tool: str, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bin / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._as_postgres(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-o",
            options,
            "-w",
            "start",
        )
        self.running = True

    def stop(self, mode: str) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        self.running = False

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        if self.running:
            with contextlib.suppress(subprocess.SubprocessError):
                self.stop("immediate")


class PrivateRedis:
    """A redis-server of this run only, without persistence: a restart starts it empty."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.log = root / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--maxmemory-policy",
                    "noeviction",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 20
        while True:
            try:
                if client.ping():
                    client.close()
                    return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError("private redis-server did not start") from None
                time.sleep(0.05)

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def close(self) -> None:
        self.stop()


class FaultServer(ServerProcess):
    """The shared server process in a session of its own, so `kill -9` reaches every worker."""

    def __init__(
        self, db: str, log: Path, args: tuple[str, ...] = (), env: dict[str, str] | None = None
    ) -> None:
        super().__init__(db, args=args, env=env, log_path=log, own_session=True)

    def start(self) -> float:
        """Start and wait for /healthz; return the seconds that took."""
        return self.run(timeout=120)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        """SIGTERM (graceful); the exit status, or None if it had to be killed."""
        return super().stop(sig, timeout)

    def close(self) -> None:
        if self.proc is not None and (self.proc.poll() is None or group_members(self.proc.pid)):
            self.kill9()

    def tracebacks(self) -> dict[str, int]:
        """Stack traces in the server log, by the message logged with them."""
        lines = self.log().splitlines()
        found: Counter[str] = Counter()
        for i, line in enumerate(lines):
            # A chained traceback follows a blank line; the first follows the logged message.
            if line.startswith("Traceback") and i and lines[i - 1].strip():
                found[lines[i - 1]] += 1
        return dict(found)


class Environment:
    """The run's temporary folder and the private services, started on first use."""

    def __init__(self, keep: bool) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="voxmeter-faults-"))
        self.root.chmod(0o755)
        self.keep = keep
        self._postgres: PrivatePostgres | None = None
        self._redis: PrivateRedis | None = None
        self.servers: list[FaultServer] = []

    def postgres(self) -> PrivatePostgres:
        if self._postgres is None:
            self._postgres = PrivatePostgres(self.root)
        return self._postgres

    def redis(self) -> PrivateRedis:
        if self._redis is None:
            self._redis = PrivateRedis(self.root)
        return self._redis

    def server(
        self, db: str, name: str, args: tuple[str, ...] = (), env: dict[str, str] | None = None
    ) -> FaultServer:
        srv = FaultServer(db, self.root / f"{name}-server.log", args, env)
        self.servers.append(srv)
        return srv

    def close(self, failed: bool) -> None:
        for srv in self.servers:
            with contextlib.suppress(Exception):
                srv.close()
        if self._redis is not None:
            self._redis.close()
        if self._postgres is not None:
            self._postgres.close()
        if self.keep or failed:
            print(f"logs and databases kept in {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)
