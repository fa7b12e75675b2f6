"""Reading an upload's body within bounds on memory, its own and all uploads' together.

One upload holds at most twice its body (the chunks as they arrive, then the body joined from
them; at most `--max-body-bytes` each) and the 10,000 events it decodes to: the codec never
builds more. Without a bound on uploads together, eight at the body limit (four tokens, two
slots each) would still hold eight bodies at once. So an upload reserves twice its declared
size before its body is read (one that declares none reads its first MiB, then reserves for
the largest body), and keeps it until it is answered; one that does not fit waits, first come
first served, within the request time limit. The budget, twice the body limit, runs one upload
of the largest size at a time, and a dozen or more of the usual few-MiB batches together.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
from starlette.requests import Request

from voxmeter.errors import PayloadTooLarge, VoxmeterError

BODIES_PER_BUDGET = 2
"""The budget, in bodies of the largest allowed size."""
HELD_PER_BODY_BYTE = 2
"""What an upload reserves per byte of its body: its chunks, then the joined body."""
UNRESERVED = 1024 * 1024
"""What an upload that declares no length reads before it reserves room for the largest body."""
EARLY_LOOKS = (64 * 1024, 256 * 1024, 1024 * 1024)
"""Body sizes at which an upload's start is looked at for more than 10,000 events, so a body
of millions of tiny elements is refused after a few KiB instead of read and scanned whole
(each look costs at most a millisecond or two on the event loop)."""
LOOKED_AT_ABOVE = 4 * 1024 * 1024
"""Bodies that declare at most this length are read whole before they are decoded, without
early looks: reading the rest of one costs little, the decoder refuses one over the count as
early as a look would, and a look at a usual batch (up to a few MiB for 10,000 events) would
scan most of it a second time."""


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


@asynccontextmanager
async def upload(
    request: Request, budget: UploadBudget, limit: int, look: Callable[[bytes], None]
) -> AsyncIterator[bytes]:
    """The body, with room for it held in `budget` until the block ends. `look` is shown the
    body's start at each of EARLY_LOOKS (for bodies over LOOKED_AT_ABOVE or of undeclared
    length) and may refuse it there."""
    declared = declared_size(request, limit)
    async with AsyncExitStack() as held:

        async def reserve(size: int) -> None:
            await held.enter_async_context(budget.hold(HELD_PER_BODY_BYTE * size))

        if declared is not None:
            await reserve(declared)
            looks = EARLY_LOOKS if declared > LOOKED_AT_ABOVE else ()
            yield await read_body(request, limit, look, looks=looks)
        else:
            yield await read_body(request, limit, look, lambda: reserve(limit))


def declared_size(request: Request, limit: int) -> int | None:
    """The body's declared length (None when it declares none); 413 at once above `limit`."""
    declared = request.headers.get("content-length")
    if declared is None or not (declared.isascii() and declared.isdigit()):
        return None
    if int(declared) > limit:
        raise PayloadTooLarge(limit)
    return int(declared)


async def read_body(
    request: Request,
    limit: int,
    look: Callable[[bytes], None],
    past_unreserved: Callable[[], Awaitable[None]] | None = None,
    looks: Iterable[int] = EARLY_LOOKS,
) -> bytes:
    """The body, refusing anything over `limit` bytes; `look` is shown its start at each of
    `looks`. `past_unreserved` is awaited once the body has grown past UNRESERVED bytes."""
    chunks: list[bytes] = []
    size = 0
    sizes = iter(looks)
    next_look = next(sizes, None)
    stream = request.stream()
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit)
        chunks.append(chunk)
        if past_unreserved is not None and size > UNRESERVED:
            await past_unreserved()
            past_unreserved = None
        if next_look is not None and size >= next_look:
            try:
                look(b"".join(chunks))
            except VoxmeterError:
                # Refused: the rest (up to the limit) is read and dropped, so that a client
                # still sending gets the reply instead of a reset connection.
                chunks.clear()
                async for rest in stream:
                    size += len(rest)
                    if size > limit:
                        break
                raise
            next_look = next(sizes, None)
    return b"".join(chunks)
