"""Per-token in-flight limits across processes: CLI runs sharing a token (a cron `watch` and a
manual `usage`) must not together exceed the server's limit of simultaneous requests.

Each slot is a lock file in a per-user directory, named by the SHA-256 of (base URL, token) and
the slot number, so no secret reaches the file system; a request holds one slot's exclusive
`flock`. The kernel drops the lock when a process dies, so a killed run never leaves a token
blocked. Where `fcntl` does not exist (Windows) this is a no-op.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from voxmeter.client._errors import APITimeoutError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]


def default_directory() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"voxmeter-slots-{os.getuid()}"


class ProcessSlots:
    """At most `limit` requests at once for one (base URL, token), across all processes."""

    def __init__(
        self,
        slot_key: tuple[str, str],
        limit: int,
        *,
        directory: Path | None = None,
        wait: float = 120.0,
        poll: float = 0.02,
    ) -> None:
        digest = hashlib.sha256("\n".join(slot_key).encode()).hexdigest()[:32]
        self._directory = directory or default_directory()
        self._paths = [self._directory / f"{digest}.{n}.lock" for n in range(limit)]
        self._wait = wait
        self._poll = poll

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold a free slot for the duration of one request, waiting up to `wait` seconds."""
        if fcntl is None:  # pragma: no cover
            yield
            return
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        deadline = time.monotonic() + self._wait
        while True:
            for path in self._paths:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                try:
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
                return
            if time.monotonic() >= deadline:
                raise APITimeoutError(
                    f"waited {self._wait:.0f}s for a free request slot: other processes are "
                    "using this token's simultaneous requests"
                )
            time.sleep(self._poll)
