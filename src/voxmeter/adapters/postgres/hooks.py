"""What the role modules' mixins need from the class they are composed into."""

from __future__ import annotations

from contextlib import AbstractContextManager

from voxmeter.adapters.postgres.pool import Connection
from voxmeter.adapters.postgres.products import Products
from voxmeter.adapters.postgres.statements import SHARED


class WriteHooks:
    """A write transaction: its connection with the operation's locks, and what it changed."""

    _products: Products
    _voidable: dict[int, str]  # seq -> id of events found by event_for_void
    changed: bool

    def _for(self, operation_id: int, level: int = SHARED) -> Connection:
        raise NotImplementedError


class ReadHooks:
    """The storage: a pooled connection for one call."""

    def _conn(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError
