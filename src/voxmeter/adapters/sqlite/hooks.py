"""What the role modules' mixins need from the class they are composed into."""

from __future__ import annotations

import sqlite3

from voxmeter.adapters.sqlite.products import Products


class WriteHooks:
    """A write transaction: its connection (inside `BEGIN IMMEDIATE`) and the product ids."""

    _conn: sqlite3.Connection
    _products: Products


class ReadHooks:
    """The storage: the reading thread's connection and the product id lookups."""

    def _reader(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _product_id(self, api: str) -> int | None:
        raise NotImplementedError

    def _api(self, pid: int) -> str:
        raise NotImplementedError
