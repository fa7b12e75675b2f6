"""The scaled-out PostgreSQL storage (several `voxmeter serve` processes share one database)."""

from voxmeter.adapters.postgres.storage import PostgresStorage

__all__ = ["PostgresStorage"]
