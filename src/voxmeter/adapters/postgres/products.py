"""Product api -> the small integer id the PostgreSQL tables store."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from voxmeter.adapters.postgres.pool import Connection, Pool


class Products:
    """Product api -> small integer id, cached; unknown apis are registered on first use."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()

    def ids(self, conn: Connection, apis: Iterable[str]) -> dict[str, int]:
        wanted = set(apis)
        missing = [api for api in wanted if api not in self._ids]
        if missing:
            found = self._lookup(conn, missing)
            if len(found) < len(missing):
                self._register([api for api in missing if api not in found])
                found = self._lookup(conn, missing)
            with self._lock:
                self._ids.update(found)
        return {api: self._ids[api] for api in wanted}

    @staticmethod
    def _lookup(conn: Connection, apis: list[str]) -> dict[str, int]:
        rows = conn.execute(
            "SELECT api, id FROM products WHERE api = ANY(%s::text[])", (apis,)
        ).fetchall()
        return {str(api): int(pid) for api, pid in rows}

    def _register(self, apis: list[str]) -> None:
        """Committed at once on a connection of its own: a product id is never rolled back with
        a failed batch, and registering never waits for another writer's transaction."""
        conn = self._pool.connect()
        try:
            conn.execute(
                "INSERT INTO products (api) SELECT unnest(%s::text[]) ON CONFLICT (api) DO NOTHING",
                (sorted(apis),),
            )
        finally:
            conn.close()
