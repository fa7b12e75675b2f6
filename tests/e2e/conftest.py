from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import VoxServer, free_port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VoxServer]:
    """One running server per test module, on its own fresh database."""
    folder: Path = tmp_path_factory.mktemp("server")
    srv = VoxServer(db=f"sqlite:///{folder / 'vox.db'}", port=free_port()).start(folder)
    yield srv
    srv.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[object]:
    """Start servers with their own arguments; all are stopped at the end of the test."""
    started: list[VoxServer] = []

    def start(*args: str, db: str | None = None, env: dict[str, str] | None = None) -> VoxServer:
        srv = VoxServer(
            db=db or f"sqlite:///{tmp_path / 'vox.db'}", port=free_port(), args=args, env=env or {}
        )
        started.append(srv.start(tmp_path))
        return srv

    yield start
    for srv in started:
        srv.stop()
