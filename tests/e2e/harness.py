"""A real `voxmeter serve` process on loopback, and the CLI as a user runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(
    db: str, *args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `voxmeter ARGS --db DB` exactly as a user would (a separate process)."""
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "voxmeter", *args, "--db", db],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"voxmeter {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


@dataclass
class Tenant:
    """An operation with a token, created through the CLI."""

    name: str
    server: str
    token: str
    token_id: str


@dataclass
class VoxServer:
    db: str
    port: int
    args: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def start(self, log_dir: Path) -> VoxServer:
        self.log_path = log_dir / f"server-{self.port}.log"
        log = self.log_path.open("ab")
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
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log()}")
            try:
                if requests.get(self.url("/healthz"), timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def cli(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return cli(self.db, *args, check=check, env=env)

    def tenant(
        self,
        *,
        server: str = "9901",
        timezone: str = "UTC",
        licenses: int = 1,
        scopes: Sequence[str] = (),
        name: str | None = None,
    ) -> Tenant:
        """A fresh operation (unique name) and a token for it."""
        name = name or f"op-{uuid.uuid4().hex[:10]}"
        self.cli(
            "operation",
            "create",
            name,
            "--server",
            server,
            "--timezone",
            timezone,
            "--licenses",
            str(licenses),
        )
        return self.token_for(name, server=server, scopes=scopes)

    def token_for(
        self,
        name: str,
        *,
        server: str = "9901",
        scopes: Sequence[str] = (),
        description: str = "test token",
    ) -> Tenant:
        scope_args = [a for s in scopes for a in ("--scope", s)]
        out = self.cli(
            "token",
            "create",
            "--operation",
            name,
            "--server",
            server,
            "--description",
            description,
            *scope_args,
        ).stdout
        lines = out.strip().splitlines()
        token_id = lines[0].split()[1]
        return Tenant(name=name, server=server, token=lines[-1], token_id=token_id)

    # HTTP helpers
    def get(self, path: str, token: str | None = None, **kw: object) -> requests.Response:
        headers = dict(kw.pop("headers", {}) or {})  # type: ignore[call-overload]
        if token is not None:
            headers["wolkvox-token"] = token
        return requests.get(self.url(path), headers=headers, timeout=30, **kw)  # type: ignore[arg-type]

    def billing(
        self, token: str, api: str, month: str | None = None, **kw: object
    ) -> requests.Response:
        params = {"api": api} | ({"month": month} if month else {})
        return self.get("/api/v2/billing.php", token, params=params, **kw)

    def items(self, token: str, api: str, month: str | None = None) -> str:
        reply = self.billing(token, api, month)
        assert reply.status_code == 200, reply.text
        return str(reply.json()["data"][0]["items"])

    def post_events(
        self, token: str, events: object, *, ndjson: bool = False, **kw: object
    ) -> requests.Response:
        import json

        headers = {"wolkvox-token": token}
        if ndjson:
            assert isinstance(events, list)
            body = "\n".join(json.dumps(e) for e in events).encode()
            headers["Content-Type"] = "application/x-ndjson"
        else:
            body = json.dumps(events).encode()
            headers["Content-Type"] = "application/json"
        headers.update(kw.pop("headers", {}) or {})  # type: ignore[call-overload]
        return requests.post(
            self.url("/api/v2/events"), data=body, headers=headers, timeout=60, **kw
        )  # type: ignore[arg-type]


def envelope_ok(reply: requests.Response, status: int, error: str | None, msg: str) -> dict:  # type: ignore[type-arg]
    """Assert the Wolkvox envelope: status line == code, exact error and msg."""
    body = reply.json()
    assert reply.status_code == status, reply.text
    assert body["code"] == status, body
    assert body["error"] == error, body
    assert body["msg"] == msg, body
    assert list(body)[:4] == ["code", "error", "msg", "data"], body
    return body  # type: ignore[no-any-return]
