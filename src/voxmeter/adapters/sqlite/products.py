"""Product api <-> the small integer id the SQLite tables store."""

from __future__ import annotations

import sqlite3

from voxmeter.adapters.sqlite import schema


class Products:
    """Product api <-> small integer id, assigned on first use and cached."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.apis: dict[int, str] = {}

    def load(self, conn: sqlite3.Connection) -> None:
        if schema.version(conn) == 0:
            return
        for pid, api in conn.execute("SELECT id, api FROM products"):
            self.ids[api] = pid
            self.apis[pid] = api

    def id_for(self, conn: sqlite3.Connection, api: str) -> int:
        pid = self.ids.get(api)
        if pid is None:
            conn.execute("INSERT OR IGNORE INTO products (api) VALUES (?)", (api,))
            pid = int(conn.execute("SELECT id FROM products WHERE api = ?", (api,)).fetchone()[0])
            self.ids[api] = pid
            self.apis[pid] = api
        return pid

    def known(self, api: str) -> int | None:
        return self.ids.get(api)
