"""How much request-body memory the uploads of one process may hold at once.

One upload holds at most twice its body (the chunks as they arrive, then the body joined from
them; at most `--max-body-bytes` each) and the 10,000 events it decodes to: the codec never
builds more. Without a bound on uploads together, eight at the body limit (four tokens, two
slots each) would still hold eight bodies at once. So an upload reserves twice its declared
size (the body limit when undeclared) before its body is read, and keeps it until it is
answered; one that does not fit waits, first come first served, within the request time limit.
The budget, twice the body limit, runs one upload of the largest size at a time, and a dozen
or more of the usual few-MiB batches together.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

BODIES_PER_BUDGET = 2
"""The budget, in bodies of the largest allowed size."""
HELD_PER_BODY_BYTE = 2
"""What an upload reserves per byte of its body: its chunks, then the joined body."""


class UploadBudget:
    """A first-come-first-served byte semaphore, for the event loop's tasks."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._waiting: deque[tuple[int, anyio.Event]] = deque()

    @asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        """Hold `size` bytes (at most the whole budget) for the duration of the block."""
        size = max(0, min(size, self.total))
        if self._waiting or size > self.free:
            entry = (size, anyio.Event())
            self._waiting.append(entry)
            try:
                await entry[1].wait()
            except BaseException:  # cancelled (time limit): give back a grant made meanwhile
                if entry in self._waiting:
                    self._waiting.remove(entry)
                    self._grant()
                else:
                    self._give_back(size)
                raise
        else:
            self.free -= size
        try:
            yield
        finally:
            self._give_back(size)

    def _give_back(self, size: int) -> None:
        self.free += size
        self._grant()

    def _grant(self) -> None:
        while self._waiting and self._waiting[0][0] <= self.free:
            size, event = self._waiting.popleft()
            self.free -= size
            event.set()
