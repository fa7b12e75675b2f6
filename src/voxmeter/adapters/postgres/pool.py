"""The PostgreSQL connection pool: psycopg_pool, with voxmeter's "unavailable at once" rule.

psycopg_pool opens connections in the background and lets a caller wait for one. That is right
while the server is there and every connection is busy (the caller waits up to `wait` seconds),
but when the server is gone a caller would wait the whole time for a connection that never
comes. Here a failed connection attempt is never retried by the pool in the background
(`reconnect_timeout=0`): it is counted, and a caller waiting in the meantime is refused with
`Unavailable` at once. The next caller tries again, so the service resumes by itself.
"""

from __future__ import annotations

import logging
import time

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolTimeout

from voxmeter.errors import Unavailable

Connection = psycopg.Connection[TupleRow]

UNAVAILABLE = "THE DATABASE IS UNAVAILABLE, TRY AGAIN SHORTLY"
_SLICE = 0.01  # seconds a waiting caller sleeps between looks at failed connection attempts

# The pool's own warnings (each failed connection attempt) would repeat, on the CLI's stderr
# and in the server log, what the caller reports once as Unavailable.
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


class Pool:
    """A bounded set of autocommit connections, so many threads (and processes) stay within
    the server's connection limit. A connection that failed is closed, never reused."""

    def __init__(
        self, url: str, size: int, wait: float, settings: dict[str, str], connect_timeout: int
    ) -> None:
        params = conninfo_to_dict(url)
        params.setdefault("connect_timeout", connect_timeout)
        params.setdefault("application_name", "voxmeter")
        # Notice a vanished server on an idle or waiting connection instead of hanging.
        params.setdefault("keepalives_idle", 10)
        params.setdefault("keepalives_interval", 3)
        params.setdefault("keepalives_count", 3)
        params.setdefault("tcp_user_timeout", 15_000)  # ms unacknowledged before giving up
        self._conninfo = make_conninfo("", **params)
        self._settings = settings
        self._wait = wait
        self._failures = 0  # connection attempts of the pool that failed
        self._closed = False
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            self._conninfo,
            kwargs={"autocommit": True},
            min_size=0,
            max_size=size,
            open=True,
            configure=self._configure,
            timeout=wait,
            reconnect_timeout=0,
            reconnect_failed=self._connect_failed,
            num_workers=1,
            name="voxmeter",
        )

    def _configure(self, conn: Connection) -> None:
        """The session settings every connection runs with."""
        names = list(self._settings)
        conn.execute(
            "SELECT " + ", ".join(["set_config(%s, %s, false)"] * len(names)),
            [x for name in names for x in (name, self._settings[name])],
        )
        # An acknowledged batch must survive a crash, whatever the server's default.
        conn.execute(
            "SELECT set_config('synchronous_commit', 'on', false)"
            " WHERE current_setting('synchronous_commit') = 'off'"
        )

    def _connect_failed(self, _: ConnectionPool[Connection]) -> None:
        self._failures += 1

    @property
    def conninfo(self) -> str:
        """The connection string, with the keep-alive and timeout parameters."""
        return self._conninfo

    def connect(self) -> Connection:
        """A new connection with the session settings applied (not counted in the pool)."""
        conn = psycopg.connect(self._conninfo, autocommit=True)
        try:
            self._configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def get(self) -> Connection:
        if self._closed:
            raise Unavailable("THE DATABASE STORAGE IS CLOSED")
        failures = self._failures
        deadline = time.monotonic() + self._wait
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Unavailable("ALL DATABASE CONNECTIONS ARE BUSY, TRY AGAIN SHORTLY")
            try:
                return self._pool.getconn(timeout=min(remaining, _SLICE))
            except PoolTimeout:
                if self._failures != failures:
                    raise Unavailable(UNAVAILABLE) from None
                if self._closed:
                    raise Unavailable("THE DATABASE STORAGE IS CLOSED") from None

    def put(self, conn: Connection) -> None:
        """Take a connection back: reused when healthy and idle, else closed."""
        broken = conn.closed or conn.broken
        if not broken and conn.info.transaction_status != TransactionStatus.IDLE:
            try:
                conn.rollback()
            except psycopg.Error:
                conn.close()
                broken = True
        self._pool.putconn(conn)
        if broken and not self._closed:
            # The server went away: the idle connections are most likely dead too.
            self._pool.check()

    def close(self) -> None:
        self._closed = True
        self._pool.close()
