"""The embedded SQLite storage."""

from voxmeter.adapters.sqlite.storage import SqliteStorage

__all__ = ["SqliteStorage"]
