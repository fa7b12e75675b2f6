"""What the SQLite and PostgreSQL adapters share, written once: row mappers, schema checks,
tenancy, settings and request counts, and the versioned month cache.

Each piece is a mixin parameterised by what differs between the two databases: the statements'
placeholder (`?` or `%s`), how text is ordered, which error a duplicate raises, and a few hooks
that run a statement on the adapter's own connections.
"""
