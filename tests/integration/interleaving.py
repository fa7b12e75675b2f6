"""A real storage with two places where a test can make another writer run: just before the next
write transaction of a thread opens, and just after its transaction has taken an operation for
itself (`exclusive`). Everything else goes straight to the storage underneath, so the races the
tests stage run on the real databases and their real locks."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from voxmeter.service.ports import Database, WriteTransaction

Hook = Callable[[], None]


class Interleaving:
    """Delegates to `storage`; each hook fires once, in the thread that armed it."""

    def __init__(self, storage: Database) -> None:
        self.storage = storage
        self._before_write: dict[int, Hook] = {}
        self._after_exclusive: dict[int, Hook] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)

    def before_next_write(self, hook: Hook) -> None:
        """Run `hook` when this thread next asks for a write transaction, before it opens."""
        self._before_write[threading.get_ident()] = hook

    def after_next_exclusive(self, hook: Hook) -> None:
        """Run `hook` inside this thread's next transaction, once it has its operation alone."""
        self._after_exclusive[threading.get_ident()] = hook

    def disarm(self) -> None:
        self._before_write.clear()
        self._after_exclusive.clear()

    @contextmanager
    def write(self) -> Iterator[WriteTransaction]:
        me = threading.get_ident()
        hook = self._before_write.pop(me, None)
        if hook is not None:
            hook()
        with self.storage.write() as tx:
            yield _Transaction(tx, self._after_exclusive.pop(me, None))


class _Transaction:
    def __init__(self, tx: WriteTransaction, after_exclusive: Hook | None) -> None:
        self._tx = tx
        self._after_exclusive = after_exclusive

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def exclusive(self, operation_id: int) -> None:
        self._tx.exclusive(operation_id)
        hook, self._after_exclusive = self._after_exclusive, None
        if hook is not None:
            hook()


class Worker:
    """`work()` on a thread of its own; `join()` hands back its result or raises its error."""

    def __init__(self, work: Callable[[], Any]) -> None:
        self._work = work
        self._result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self._result = self._work()
        except BaseException as exc:  # handed to the joining thread
            self._error = exc

    def start(self) -> Worker:
        self._thread.start()
        return self

    def join(self, timeout: float = 60.0) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the worker did not finish"
        if self._error is not None:
            raise self._error
        return self._result
