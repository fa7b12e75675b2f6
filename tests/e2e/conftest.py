"""Every end-to-end test runs against both deployment modes: embedded (SQLite, in-process limits)
and scaled out (PostgreSQL + Redis). Tests about one mode only are marked `sqlite_only`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.backends import REDIS_URL, pg_schema, redis_prefix
from tests.e2e.harness import VoxServer, free_port
from tests.e2e.inprocess import AppServer

BACKENDS = ["sqlite", "postgres"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only: about the embedded mode's own files; not run on PostgreSQL"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the PostgreSQL variant of tests that only make sense on a SQLite file."""
    keep, drop = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        backend = params.params.get("backend") if params else None
        if backend == "postgres" and item.get_closest_marker("sqlite_only"):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Databases:
    """Fresh databases of the test's backend: SQLite files, or PostgreSQL schemas + Redis
    prefixes (all removed at the end)."""

    def __init__(self, backend: str, folder: Path, stack: ExitStack) -> None:
        self.backend = backend
        self.folder = folder
        self._stack = stack
        self._prefix: dict[str, str] = {}

    def new(self, name: str = "vox") -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.folder / (name + '.db')}"
        url = self._stack.enter_context(pg_schema())
        self._prefix[url] = self._stack.enter_context(redis_prefix())
        return url

    def server_args(self, db: str, args: tuple[str, ...]) -> tuple[str, ...]:
        """Scaled-out servers take their limits from Redis."""
        if db.startswith("postgresql") and "--redis" not in args:
            return (*args, "--redis", REDIS_URL)
        return args

    def server_env(self, db: str, env: dict[str, str]) -> dict[str, str]:
        prefix = self._prefix.get(db)
        return {"VOXMETER_REDIS_PREFIX": prefix, **env} if prefix else env


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VoxServer]:
    """One running server per test module and backend, on its own fresh database."""
    folder: Path = tmp_path_factory.mktemp("server")
    with ExitStack() as stack:
        dbs = Databases(backend, folder, stack)
        db = dbs.new()
        srv = VoxServer(
            db=db, port=free_port(), args=dbs.server_args(db, ()), env=dbs.server_env(db, {})
        ).start(folder)
        yield srv
        srv.stop()


@pytest.fixture(scope="module")
def app_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """The app `voxmeter serve` runs, in this process (tests/e2e/inprocess.py), one per test
    module and backend, on its own fresh database. A module whose cases need no separate process
    uses it as its `server`."""
    folder: Path = tmp_path_factory.mktemp("app")
    with ExitStack() as stack:
        dbs = Databases(backend, folder, stack)
        db = dbs.new()
        redis = REDIS_URL if db.startswith("postgresql") else None
        with AppServer(db, redis_url=redis, env=dbs.server_env(db, {})) as app:
            yield app


@pytest.fixture
def databases(backend: str, tmp_path: Path) -> Iterator[Databases]:
    with ExitStack() as stack:
        yield Databases(backend, tmp_path, stack)


@pytest.fixture
def fresh_db(databases: Databases) -> Callable[..., str]:
    """`fresh_db(name)`: the URL of a new, empty database of the test's backend."""
    return databases.new


@pytest.fixture
def make_server(databases: Databases, tmp_path: Path) -> Iterator[Callable[..., VoxServer]]:
    """Start servers with their own arguments; all are stopped at the end of the test."""
    started: list[VoxServer] = []

    def start(*args: str, db: str | None = None, env: dict[str, str] | None = None) -> VoxServer:
        db = db or databases.new()
        srv = VoxServer(
            db=db,
            port=free_port(),
            args=databases.server_args(db, args),
            env=databases.server_env(db, env or {}),
        )
        started.append(srv.start(tmp_path))
        return srv

    yield start
    for srv in started:
        srv.stop()
